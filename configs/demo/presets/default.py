# The default demo (python tools/run_dap_demo.py): what is not a training
# setting -- the generated benchmark's sizes (seed: --data-seed) and step
# 4's grid (--shots / --seeds change it for one run).  Every training setting
# is the demo config's own, trained as it stands (stage -> config: CONFIGS
# in projects/dap/dap/demo/presets.py): classifier epochs in
# resnet18-w32_mini-imagenet.py (max_epochs), DAP iterations in
# dap_faster-rcnn_r18-w32_fpn_mini-imagenet.py (max_iters), fine-tuning
# epochs in faster-rcnn_r18-w32_fpn_dap_mini-voc.py (max_epochs) and the
# k-shot floor in _base_/fewshot_mini-voc.py (fewshot.min_iters).
data = dict(
    images_per_class=250,  # mini-ImageNet train images per class
    val_per_class=20,
    num_trainval=200,  # mini-VOC
    num_test=100)
shots = (5, 10, 20)  # k-shot settings of step 4 (besides full trainval)
seeds = 3  # fine-tuning seeds per setting (0, 1, ...)
