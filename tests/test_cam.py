"""CAMs: the GT-class map, normalisation, fusion, flip averaging, a tiny
random-init mmpretrain ResNet end to end (batched == one at a time), and
the geometry of boxes fitted to a synthetic bright blob."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.box_fitting import fit_one

from projects.dap.dap.models.box_fitting import FALLBACK_THRESHOLD
from projects.dap.dap.models.cam import (CAMExtractor, compute_cam, fuse_cams,
                                         normalize_cam, resized_size)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny convolutions: threads only cost time (a lot on a busy box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class BrightnessClassifier(torch.nn.Module):
    """A stand-in classifier: the 'feature' of a 32 x 32 cell is the mean of
    each normalised RGB channel, class 0 sums them (brightness), class 1
    is its negative."""

    def __init__(self, constant=False):
        super().__init__()
        self.head = torch.nn.Module()
        self.head.fc = torch.nn.Linear(3, 2)
        with torch.no_grad():
            self.head.fc.weight.copy_(torch.tensor([[1.0] * 3, [-1.0] * 3]))
            self.head.fc.bias.copy_(torch.tensor([0.5, -0.5]))
        self.constant = constant
        self.inputs = []

    def extract_feat(self, x, stage='neck'):
        assert stage == 'backbone'
        self.inputs.append(x)
        feat = F.avg_pool2d(x, 32)
        return (torch.ones_like(feat) if self.constant else feat, )


def tiny_resnet(num_classes=5, seed=0):
    from mmengine.registry import DefaultScope
    from mmpretrain.models import ImageClassifier
    torch.manual_seed(seed)
    # mmpretrain's registries, whatever scope an earlier test left set
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = ImageClassifier(
            backbone=dict(type='ResNet', depth=18, out_indices=(3, )),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead', num_classes=num_classes,
                in_channels=512),
            data_preprocessor=dict(
                mean=[120.0, 110.0, 100.0], std=[60.0, 50.0, 40.0]))
    return model.eval()


def test_compute_cam_matches_hand_einsum():
    rng = np.random.default_rng(0)
    feat = torch.from_numpy(rng.standard_normal((2, 3, 2, 4)))
    weight = torch.from_numpy(rng.standard_normal((5, 3)))
    bias = torch.from_numpy(rng.standard_normal(5))
    cam = compute_cam(feat, weight, bias, [4, 1])
    want = np.zeros((2, 2, 4))
    for n, c in enumerate([4, 1]):
        for y in range(2):
            for x in range(4):
                want[n, y, x] = sum(weight[c, k].item() * feat[n, k, y, x]
                                    for k in range(3)) + bias[c].item()
    np.testing.assert_allclose(cam.numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(
        compute_cam(feat, weight, None, torch.tensor([4, 1])).numpy(),
        want - bias.numpy()[[4, 1], None, None],
        rtol=1e-12)
    with pytest.raises(ValueError, match='labels'):
        compute_cam(feat, weight, bias, [1])
    with pytest.raises(
            ValueError,
            match='^the head takes 2 channels but the '
            'features have 3$'):
        compute_cam(feat, weight[:, :2], bias, [1, 2])


def test_normalize_cam():
    cam = torch.tensor([[[1.0, 3.0], [5.0, 2.0]], [[4.0, 4.0], [4.0, 4.0]]])
    out = normalize_cam(cam)
    np.testing.assert_allclose(out[0], [[0, 0.5], [1, 0.25]])
    # A constant map has no spatial information: all zeros, no NaN.
    np.testing.assert_array_equal(out[1], np.zeros((2, 2)))
    # Cells outside the mask (batch padding) neither count nor survive.
    mask = torch.tensor([[True, True], [False, True]])
    # Valid cells 1, 3, 2: min 1, max 3.
    np.testing.assert_allclose(normalize_cam(cam[0], mask), [[0, 1], [0, 0.5]])
    out = normalize_cam(
        torch.tensor([[2.0, 7.0, 3.0]]), torch.tensor([[True, False, True]]))
    np.testing.assert_allclose(out, [[0, 0, 1]])
    # a 0/1 mask of another dtype means the same
    for dtype in (torch.uint8, torch.float32):
        assert torch.equal(
            normalize_cam(
                torch.tensor([[2.0, 7.0, 3.0]]),
                torch.tensor([[1, 0, 1]], dtype=dtype)), out)


def test_constant_cam_gives_the_whole_map_box():
    cam = normalize_cam(torch.full((5, 7), 3.0))
    boxes, scores, _ = fit_one(cam)
    np.testing.assert_array_equal(boxes, [[0, 0, 7, 5]])
    np.testing.assert_array_equal(scores, [1])
    # Through the extractor: a classifier whose features are constant.
    extractor = CAMExtractor(
        BrightnessClassifier(constant=True), scales=(64, 128))
    image = torch.randint(0, 255, (3, 70, 100), dtype=torch.uint8)
    fused = extractor([image], [0])[0]
    assert torch.equal(fused, torch.zeros(4, 6))
    res = fit_one(fused)
    np.testing.assert_array_equal(res.boxes, [[0, 0, 6, 4]])
    np.testing.assert_array_equal(res.thresholds, [FALLBACK_THRESHOLD])


def test_fuse_2x2_into_4x4_by_hand():
    small = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    large = torch.arange(16.0).reshape(4, 4) / 16
    # Nearest: each small cell covers a 2 x 2 block of the large grid.
    up = torch.tensor([[0.0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3],
                       [2, 2, 3, 3]])
    np.testing.assert_allclose(fuse_cams(small, large), (up + large) / 2)
    # torch nearest picks floor(dst * in / out): 3 -> 5 columns take
    # source columns 0, 0, 1, 1, 2.
    fused = fuse_cams(torch.tensor([[0.0, 1.0, 2.0]]), torch.zeros(1, 5))
    np.testing.assert_allclose(fused, [[0, 0, 0.5, 0.5, 1]])
    batched = fuse_cams(small[None].repeat(2, 1, 1),
                        large[None].repeat(2, 1, 1))
    assert batched.shape == (2, 4, 4)
    with pytest.raises(ValueError, match='^fuse_cams needs at least one map$'):
        fuse_cams()


class PatternClassifier(torch.nn.Module):
    """Features set by hand: one channel whose value at each cell is
    ``PATTERNS[input height]`` (whatever the pixels); class 0 is
    ``2 f + 1``, class 1 is ``-f``."""

    PATTERNS = {
        32: torch.tensor([[0.0, 1.0], [3.0, 4.0]]),
        64: torch.zeros(4, 4)
    }
    PATTERNS[64][0, 0], PATTERNS[64][2, 2] = 8.0, 4.0

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Module()
        self.head.fc = torch.nn.Linear(1, 2)
        with torch.no_grad():
            self.head.fc.weight.copy_(torch.tensor([[2.0], [-1.0]]))
            self.head.fc.bias.copy_(torch.tensor([1.0, 0.0]))

    def extract_feat(self, x, stage='neck'):
        pattern = self.PATTERNS[x.shape[-2]]
        return (pattern.expand(x.shape[0], 1, *pattern.shape), )


def test_two_scale_extractor_fuses_by_hand():
    """Scales 32 and 64 of a 64 x 64 image with stride 16: 2 x 2 and 4 x 4
    CAMs known by hand, nearest-fused (bilinear would give other values)."""
    extractor = CAMExtractor(
        PatternClassifier(), scales=(32, 64), flip=False, stride=16)
    image = torch.zeros(3, 64, 64, dtype=torch.uint8)
    cam0, cam1 = extractor([image, image], [0, 1])
    # class 0, min-max normalised: 32 -> [[0, .25], [.75, 1]], 64 -> f / 8;
    # each 32 cell covers a 2 x 2 block of the 64 grid.
    want0 = torch.tensor([[1.0, 0.0, 0.25, 0.25], [0.0, 0.0, 0.25, 0.25],
                          [0.75, 0.75, 1.5, 1.0], [0.75, 0.75, 1.0, 1.0]])
    assert torch.equal(cam0, want0 / 2) and not cam0.requires_grad
    # class 1 (-f): each normalised map is 1 - the class-0 map.
    assert torch.equal(cam1, 1 - want0 / 2)
    # Fused on the 32 grid: the 64 map is sampled at rows / columns 0, 2.
    small = CAMExtractor(
        PatternClassifier(),
        scales=(32, 64),
        flip=False,
        stride=16,
        fusion_scale=32)([image], [0])[0]
    assert torch.equal(small, torch.tensor([[1.0, 0.25], [0.75, 1.5]]) / 2)
    # The same numbers as the fusion helper on the two normalised maps.
    maps = [
        normalize_cam(2 * PatternClassifier.PATTERNS[s] + 1) for s in (32, 64)
    ]
    assert torch.equal(fuse_cams(*maps), cam0)
    assert torch.equal(fuse_cams(*maps, onto=0), small)


def test_resized_size_follows_torchvision_rounding():
    assert resized_size(375, 500, 288) == (288, 384)
    assert resized_size(500, 333, 576) == (864, 576)  # int(864.86)
    assert resized_size(100, 100, 64) == (64, 64)
    assert resized_size(576, 1000, 576) == (576, 1000)


def test_preprocess_by_hand():
    """Normalise with the given mean / std, zero-pad right and bottom to the
    stride; a smaller scale resizes like PIL's bilinear (antialiased),
    rounded back to integers for a uint8 image."""
    from PIL import Image
    extractor = CAMExtractor(
        BrightnessClassifier(),
        scales=(20, ),
        stride=16,
        mean=(10.0, 20.0, 30.0),
        std=(2.0, 4.0, 0.5))
    mean = torch.tensor([10.0, 20.0, 30.0])[:, None, None]
    std = torch.tensor([2.0, 4.0, 0.5])[:, None, None]
    gen = torch.Generator().manual_seed(0)
    image = torch.randint(
        0, 256, (3, 20, 30), dtype=torch.uint8, generator=gen)
    image[:, :5] = 0  # black and white regions stay 0 and 255
    image[:, 5:10] = 255
    # short side already 20: no resize; padded 20 x 30 -> 32 x 32
    x = extractor.preprocess(image.float(), True, 20)
    assert x.shape == (3, 32, 32)
    assert torch.equal(x[:, :20, :30], (image.float() - mean) / std)
    assert (x[:, 20:] == 0).all() and (x[:, :, 30:] == 0).all()
    # short side 10: 10 x 15, what PIL's bilinear resize gives (+-1 level)
    x = extractor.preprocess(image.float(), True, 10)
    assert x.shape == (3, 16, 16)
    pixels = x[:, :10, :15] * std + mean
    assert torch.equal(pixels, pixels.round())
    assert pixels.min() == 0 and pixels.max() == 255
    pil = np.stack([
        np.asarray(
            Image.fromarray(c.numpy()).resize((15, 10), Image.BILINEAR))
        for c in image
    ])
    assert np.abs(pixels.numpy() - pil).max() <= 1
    # a float image is not rounded
    x = extractor.preprocess(image.float() + 0.25, False, 10)
    assert not torch.equal(x[:, :10, :15] * std + mean,
                           (x[:, :10, :15] * std + mean).round())


def test_flip_average_equals_average_of_flipped_cams():
    model = tiny_resnet()
    image = torch.randint(0, 256, (3, 45, 65), dtype=torch.uint8)
    both = CAMExtractor(model, scales=(64, ), flip=True)
    plain = CAMExtractor(model, scales=(64, ), flip=False)
    x = both.preprocess(image.float(), True, 64)[None]
    assert x.shape == (1, 3, 64, 96)  # 64 x 92 padded to 32
    cam_flip_avg = compute_cam(
        both.features(x), both.fc.weight, both.fc.bias, [2])
    cam_a = compute_cam(plain.features(x), both.fc.weight, both.fc.bias, [2])
    cam_b = compute_cam(
        plain.features(x.flip(-1)), both.fc.weight, both.fc.bias, [2]).flip(-1)
    torch.testing.assert_close(
        cam_flip_avg, (cam_a + cam_b) / 2, rtol=0, atol=1e-5)


def test_tiny_resnet_batched_equals_one_at_a_time():
    model = tiny_resnet()
    gen = torch.Generator().manual_seed(1)
    sizes = [(40, 70), (75, 50), (40, 70), (33, 33), (90, 60)]
    images = [
        torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen)
        for h, w in sizes
    ]
    labels = [0, 3, 4, 1, 2]
    extractor = CAMExtractor(model, scales=(32, 64))
    assert extractor.mean == (120.0, 110.0, 100.0)
    assert extractor.std == (60.0, 50.0, 40.0)
    cams = extractor(images, labels)
    for (h, w), cam, image, label in zip(sizes, cams, images, labels):
        rh, rw = resized_size(h, w, 64)
        assert cam.shape == (-(-rh // 32), -(-rw // 32))
        assert cam.dtype == torch.float32
        assert 0 <= cam.min() and cam.max() <= 1
        alone = extractor([image], [label])[0]
        assert torch.equal(cam, alone)
    # The fused map averages the two normalised scales: the 64 map keeps
    # its full [0, 1] range, so the max is at least 0.5.
    assert all(cam.max() >= 0.5 for cam in cams)
    # Numpy (H, W, 3) input is the same image.
    as_numpy = extractor([images[1].permute(1, 2, 0).numpy()], [3])[0]
    assert torch.equal(as_numpy, cams[1])
    # Batches of same-size images: equal up to the backend's rounding.
    grouped = CAMExtractor(model, scales=(32, 64), max_batch=4)(images, labels)
    for a, b in zip(grouped, cams):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    # Each map is its own steps composed: preprocess, flip-averaged
    # features, the label's CAM, min-max per scale, nearest fusion on 64.
    for cam, image, label in zip(cams, images, labels):
        steps = [
            normalize_cam(
                compute_cam(
                    extractor.features(
                        extractor.preprocess(image.float(), True, s)[None]),
                    model.head.fc.weight, model.head.fc.bias, [label]))[0]
            for s in (32, 64)
        ]
        assert torch.equal(cam, fuse_cams(*steps))


def test_bright_blob_gives_a_box_around_it():
    # 200 x 300 image, a bright 100 x 150 rectangle at x 100..250, y 50..150.
    image = np.full((200, 300, 3), 20, np.uint8)
    image[50:150, 100:250] = 230
    extractor = CAMExtractor(BrightnessClassifier(), scales=(288, 576))
    cam = extractor([image], [0])[0]
    # 576-scale grid: 576 x 864 pixels, 18 x 27 cells of 32 pixels.
    assert cam.shape == (18, 27)
    res = fit_one(cam, image_hw=(200, 300))
    gt = np.array([100, 50, 250, 150])
    best = res.boxes[0]
    iw = min(best[2], gt[2]) - max(best[0], gt[0])
    ih = min(best[3], gt[3]) - max(best[1], gt[1])
    iou = iw * ih / ((best[2] - best[0]) *
                     (best[3] - best[1]) + 150 * 100 - iw * ih)
    assert iou > 0.8, (res.boxes, iou)
    # The top box is centred on the blob (175, 100) within a cell (~11 px).
    np.testing.assert_allclose([(best[0] + best[2]) / 2,
                                (best[1] + best[3]) / 2], [175, 100],
                               atol=11.2)
    # Class 1 (negative brightness): the blob is dark, its surroundings
    # bright, so no box is the blob.
    neg = fit_one(extractor([image], [1])[0], image_hw=(200, 300))
    assert not np.allclose(neg.boxes[0], best, atol=20)


def test_synthetic_feature_blob_through_compute_cam():
    feat = torch.zeros(1, 2, 18, 24)
    feat[0, 0, 5:10, 10:16] = 3.0  # a 5 x 6 blob in channel 0
    feat[0, 1] = torch.rand(18, 24)  # channel 1 is ignored by class 1
    weight = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    cam = normalize_cam(compute_cam(feat, weight, torch.zeros(2), [1]))[0]
    boxes, *_ = fit_one(cam)
    # One uniform blob: columns 10..15 and rows 5..9 have means 12.5 and 7,
    # so the box centre is (13, 7.5); sizes sqrt(6^2 - 1), sqrt(5^2 - 1).
    w, h = 35**0.5, 24**0.5
    np.testing.assert_allclose(
        boxes, [[13 - w / 2, 7.5 - h / 2, 13 + w / 2, 7.5 + h / 2]], atol=1e-6)


def test_max_batch_groups_same_size_images():
    """Same padded size, at most ``max_batch`` per forward (with flips)."""
    classifier = BrightnessClassifier()
    extractor = CAMExtractor(classifier, scales=(64, ), max_batch=2)
    images = [
        torch.randint(0, 255, (3, 64, w), dtype=torch.uint8)
        for w in (80, 70, 80, 100, 66)
    ]
    cams = extractor(images, [0] * 5)
    # width 100 pads to 128: its own group; the four 96-wide ones in two
    assert [tuple(x.shape) for x in classifier.inputs] == [(4, 3, 64, 96),
                                                           (4, 3, 64, 96),
                                                           (2, 3, 64, 128)]
    one_by_one = CAMExtractor(classifier, scales=(64, ))(images, [0] * 5)
    for a, b in zip(cams, one_by_one):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_the_padded_input_is_flipped():
    classifier = BrightnessClassifier()
    extractor = CAMExtractor(classifier, scales=(64, ), flip=True)
    image = torch.randint(0, 255, (3, 64, 80), dtype=torch.uint8)
    extractor([image], [0])
    batch = classifier.inputs[-1]
    assert batch.shape == (2, 3, 64, 96)  # 80 -> 96 padded, then flipped
    torch.testing.assert_close(batch[1], batch[0].flip(-1))
    assert (batch[0, :, :, 80:] == 0).all()


def test_extractor_settings_are_checked_with_clear_errors():
    ok = BrightnessClassifier()
    default = CAMExtractor(ok)
    assert default.scales == (288, 576) and default.fusion_scale == 576
    assert default.flip is True and default.stride == 32
    assert default.max_batch == 1
    # no data_preprocessor: ImageNet's statistics
    assert default.mean == (123.675, 116.28, 103.53)
    assert default.std == (58.395, 57.12, 57.375)
    given = CAMExtractor(
        ok,
        scales=[64.0, 32],
        flip=0,
        stride=16.0,
        mean=[1, 2, 3],
        std=[4, 0.5, 6],
        max_batch=2.0)
    assert given.scales == (64, 32) and given.fusion_scale == 64
    assert given.flip is False and given.stride == 16
    assert given.mean == (1.0, 2.0, 3.0) and given.std == (4.0, 0.5, 6.0)
    assert given.max_batch == 2
    bad = [
        (dict(scales=()), r'^scales must be positive, got \(\)$'),
        (dict(scales=(64, 0)), r'^scales must be positive, got \(64, 0\)$'),
        (dict(stride=0), r'^stride must be positive, got 0$'),
        (dict(scales=(64, ), fusion_scale=32),
         r'^fusion_scale 32 is not one of the scales \(64,\)$'),
        (dict(mean=(1, 2)), r'^need 3 means and 3 positive stds, got '
         r'\(1, 2\), \(58.395, 57.12, 57.375\)$'),
        (dict(std=(1, 2, 3, 4)), r'need 3 means and 3 positive stds'),
        (dict(std=(1, 0, 3)), r'need 3 means and 3 positive stds'),
        (dict(max_batch=0), r'^max_batch must be >= 1, got 0$'),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            CAMExtractor(ok, **kwargs)
    CAMExtractor(ok, scales=(1, ), stride=1, max_batch=1)  # smallest valid
    with pytest.raises(
            ValueError,
            match=r'^the classifier needs a linear '
            r'head `head.fc` \(mmpretrain LinearClsHead\)$'):
        CAMExtractor(torch.nn.Linear(2, 2))
    no_features = torch.nn.Module()
    no_features.head = torch.nn.Module()
    no_features.head.fc = torch.nn.Linear(3, 2)
    with pytest.raises(
            ValueError,
            match=r'^the classifier needs '
            r"extract_feat\(x, stage='backbone'\) "
            r'\(mmpretrain ImageClassifier\)$'):
        CAMExtractor(no_features)


def test_bad_input_raises_clear_errors():
    extractor = CAMExtractor(BrightnessClassifier(), scales=(64, ))
    good = torch.zeros(3, 40, 40, dtype=torch.uint8)
    with pytest.raises(ValueError, match='^2 images but 1 labels$'):
        extractor([good, good], [0])
    for label in (2, -1):
        with pytest.raises(
                ValueError,
                match=rf'^image 0: label {label} is '
                r"outside the classifier's classes \[0, 2\)$"):
            extractor([good], [label])
    with pytest.raises(
            ValueError,
            match=r'^image 1: a tensor image must be '
            r'\(3, H, W\) RGB, got \(40, 40, 3\)$'):
        extractor([good, torch.zeros(40, 40, 3)], [0, 0])
    with pytest.raises(ValueError, match=r'got \(3, 0, 4\)$'):
        extractor([torch.zeros(3, 0, 4)], [0])
    with pytest.raises(
            ValueError,
            match=r'^image 0: a numpy image must be '
            r'\(H, W, 3\) RGB, got \(3, 40, 40\)$'):
        extractor([np.zeros((3, 40, 40), np.uint8)], [0])
    with pytest.raises(ValueError, match=r'got \(40, 40\)$'):
        extractor([np.zeros((40, 40), np.uint8)], [0])
    with pytest.raises(
            ValueError,
            match=r'^image 0: expected a tensor or '
            r'array, got list$'):
        extractor([[[0]]], [0])
    with pytest.raises(ValueError, match='^image 0 holds NaN or inf values$'):
        extractor([torch.full((3, 8, 8), float('nan'))], [0])
    with pytest.raises(ValueError, match='^image 0 holds NaN or inf values$'):
        extractor([torch.full((3, 8, 8), float('inf'))], [0])
    with pytest.raises(
            ValueError,
            match=r'^image 0: dtype torch.int32 is '
            'neither uint8 nor float$'):
        extractor([torch.zeros(3, 8, 8, dtype=torch.int32)], [0])
    with pytest.raises(ValueError, match='fusion_scale'):
        CAMExtractor(BrightnessClassifier(), scales=(64, ), fusion_scale=32)
    with pytest.raises(ValueError, match='linear head'):
        CAMExtractor(torch.nn.Linear(2, 2))
    with pytest.raises(
            ValueError,
            match=r'^the backbone gave features of '
            r'shape \(1, 3, 2, 2\) for a \(64, 64\) input; '
            r'expected a \(4, 4\) map \(stride 16, last stage in '
            r'out_indices\)$'):
        CAMExtractor(
            BrightnessClassifier(), scales=(64, ), stride=16,
            flip=False)([good], [0])
    # a backbone may return the last feature map itself, not a tuple
    bare = BrightnessClassifier()
    bare.extract_feat = lambda x, stage: F.avg_pool2d(x, 32)
    images = [good, torch.full((3, 40, 40), 200, dtype=torch.uint8)]
    for got, want in zip(
            CAMExtractor(bare, scales=(64, ))(images, [0, 1]),
            CAMExtractor(BrightnessClassifier(), scales=(64, ))(images,
                                                                [0, 1])):
        assert torch.equal(got, want)
