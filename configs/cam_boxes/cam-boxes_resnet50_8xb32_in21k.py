# DAP step 2: CAM pseudo boxes for ImageNet-22K (fall 2011, 21841 classes)
# from a ResNet-50 classifier. Labels are 0-based class indices in
# meta/train.txt ("<wnid>/<file> <label>"); the original's 0/1-based label
# bug (one class merged with background) does not exist here.
_base_ = ['./cam-boxes_resnet50_8xb32_in1k.py']

model = dict(classifier=dict(head=dict(num_classes=21841)))

test_dataloader = dict(
    dataset=dict(
        # mmpretrain's ImageNet21k through an on-disk index of the 14M
        # lines (built once, meta/train.txt.dapindex): ~constant memory
        # per rank instead of ~13 GB
        type='IndexedImageNet21k',
        data_root='data/imagenet21k',
        split='train',
        # optional: a text file with the 21841 class names (wnids), one per
        # line, in label order; stored in the box file
        # classes='data/imagenet21k/meta/classes.txt',
    ))
custom_hooks = [
    dict(
        type='CAMBoxHook',
        out_file='data/imagenet21k/pseudo_boxes/in22k_r50.dapbox',
        flush_every=1000),
]
