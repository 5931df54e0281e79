# The demo's k-shot runs (step 4): the real few-shot block with the floor of
# a split's schedule scaled to mini-VOC: at least min_iters iterations at
# batch 4 (a 5-shot split would otherwise train for a dozen).
_base_ = ['../../finetune/_base_/fewshot_voc07.py']
fewshot = dict(min_iters=128)
