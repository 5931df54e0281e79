# The quick demo (tools/run_dap_demo.py --quick, the tests: a few minutes):
# a tiny benchmark and every stage trained for a few steps.  `train_length`
# replaces a stage config's epochs (or iterations, as its loop counts) and
# scales what the config ties to its length -- evaluation and checkpoint
# interval, the LR schedule's steps in the same unit -- to the same fraction
# (at least 1); every run's config file under the work dir shows the result.
data = dict(images_per_class=24, val_per_class=4, num_trainval=40, num_test=20)
shots = (5, )
seeds = 2
train_length = dict(classifier=1, dap=12, finetune=1)
fewshot_min_iters = 6
