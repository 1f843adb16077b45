"""The expected values of every registered backbone, written down, not derived from the implementation.

``tests/exporters/test_families.py`` checks each registered model against its row here, so a new
family adds a ``FAMILIES`` entry (and ``tests/ms_helpers.py`` may name its representative); it needs
no test file of its own. A registered model without a row fails, and so does a row without a
registered model.

A family entry:

* ``scenario``: 1 one cell per stage, 2 one flattened ``SequentialCell`` (``flatten_sequential``),
  3 a rewritten feature class (``is_rewritten``); see docs/adding-a-backbone.md.
* ``feature_class``, ``head`` (scenario 3 only): the name of the feature class (a subclass of the
  classifier), and the parameter prefixes it drops; it keeps every other parameter of the classifier.
* ``models``: one row per registered model.

A model row:

* ``feature_info`` (required): ``(name, chs, reduction)`` per level, shallow to deep.
* ``params`` (required): MindCV parameter names with their shapes, a sample that pins the layout
  (stem, first and last blocks, branch structure, head), so MindCV checkpoints load.
* ``absent``: parameter names that must not exist (one block past the last, a branch a variant lacks).
* ``trainable``: the number of trainable parameters (BatchNorm moving statistics excluded), MindCV's count.
* ``total``: the number of all parameters, BatchNorm moving statistics included.
* ``default_out_indices``: the levels ``out_indices=None`` selects, where a family has a default other than all.
* ``cells`` (scenarios 1 and 2): the top-level cells of the features-only model with every level,
  i.e. the cells the wrapper keeps up to and including the deepest level.
"""
from __future__ import annotations

# ------------------------------------------------------------------------------------------------ resnet
_RESNET_BASIC = [("relu", 64, 2), ("layer1", 64, 4), ("layer2", 128, 8), ("layer3", 256, 16), ("layer4", 512, 32)]
_RESNET_BOTTLENECK = [("relu", 64, 2), ("layer1", 256, 4), ("layer2", 512, 8), ("layer3", 1024, 16),
                      ("layer4", 2048, 32)]
_RESNET_STEM = {"conv1.weight": (64, 3, 7, 7), "bn1.gamma": (64,), "bn1.moving_variance": (64,)}

RESNET = dict(scenario=1, models={
    "resnet18": dict(
        feature_info=_RESNET_BASIC, cells=8, trainable=11_689_512,  # torchvision's count: the same layers
        params={**_RESNET_STEM,
                "layer1.0.conv1.weight": (64, 64, 3, 3),
                "layer2.0.down_sample.0.weight": (128, 64, 1, 1),
                "layer2.0.down_sample.1.moving_mean": (128,),
                "layer4.1.conv2.weight": (512, 512, 3, 3),
                "classifier.weight": (1000, 512), "classifier.bias": (1000,)},
        absent=["layer1.0.down_sample.0.weight", "layer4.2.conv1.weight", "layer1.0.conv3.weight"]),
    "resnet34": dict(
        feature_info=_RESNET_BASIC, cells=8, trainable=21_797_672,
        params={**_RESNET_STEM, "layer3.5.conv2.weight": (256, 256, 3, 3), "layer4.2.bn2.beta": (512,),
                "classifier.weight": (1000, 512)},
        absent=["layer3.6.conv1.weight", "layer4.3.conv1.weight"]),
    "resnet50": dict(
        feature_info=_RESNET_BOTTLENECK, cells=8, trainable=25_557_032,
        params={**_RESNET_STEM,
                "layer1.0.conv1.weight": (64, 64, 1, 1),
                "layer1.0.conv2.weight": (64, 64, 3, 3),
                "layer1.0.conv3.weight": (256, 64, 1, 1),
                "layer1.0.down_sample.0.weight": (256, 64, 1, 1),  # channels change at layer1 already
                "layer3.5.bn3.gamma": (1024,),
                "layer4.2.conv3.weight": (2048, 512, 1, 1),
                "classifier.weight": (1000, 2048), "classifier.bias": (1000,)},
        absent=["layer3.6.conv1.weight", "layer1.1.down_sample.0.weight"]),
    "resnet101": dict(
        feature_info=_RESNET_BOTTLENECK, cells=8, trainable=44_549_160,
        params={"layer3.22.conv2.weight": (256, 256, 3, 3), "classifier.weight": (1000, 2048)},
        absent=["layer3.23.conv1.weight"]),
    "resnet152": dict(
        feature_info=_RESNET_BOTTLENECK, cells=8, trainable=60_192_808,
        params={"layer2.7.conv3.weight": (512, 128, 1, 1), "layer3.35.conv2.weight": (256, 256, 3, 3),
                "classifier.weight": (1000, 2048)},
        absent=["layer2.8.conv1.weight", "layer3.36.conv1.weight"]),
})

# ----------------------------------------------------------------------------------------------- resnest
RESNEST = dict(scenario=1, models={
    "resnest50": dict(
        feature_info=[("relu", 64, 2), ("layer1", 256, 4), ("layer2", 512, 8), ("layer3", 1024, 16),
                      ("layer4", 2048, 32)],
        cells=8, trainable=27_483_240,  # MindCV resnest50: 27.48M
        params={
            "conv1.0.weight": (32, 3, 3, 3),  # deep stem 32 -> 32 -> 64
            "conv1.1.gamma": (32,),
            "conv1.3.weight": (32, 32, 3, 3),
            "conv1.6.weight": (64, 32, 3, 3),
            "bn1.moving_variance": (64,),
            "layer1.0.conv1.weight": (64, 64, 1, 1),
            "layer1.0.conv2.conv.weight": (128, 32, 3, 3),  # radix 2: groups = 2
            "layer1.0.conv2.bn0.gamma": (128,),
            "layer1.0.conv2.fc1.weight": (32, 64, 1, 1),
            "layer1.0.conv2.fc1.bias": (32,),
            "layer1.0.conv2.bn1.moving_mean": (32,),
            "layer1.0.conv2.fc2.weight": (128, 32, 1, 1),
            "layer1.0.conv3.weight": (256, 64, 1, 1),
            "layer1.0.downsample.1.weight": (256, 64, 1, 1),  # .0 is the average pool
            "layer1.0.downsample.2.beta": (256,),
            "layer2.0.conv2.fc1.weight": (64, 128, 1, 1),
            "layer4.2.bn3.gamma": (2048,),
            "fc.weight": (1000, 2048),
            "fc.bias": (1000,),
        },
        # radix 2 blocks have no bn2
        absent=["layer1.0.bn2.gamma", "layer4.2.bn2.gamma", "layer4.3.conv1.weight"]),
})

# ------------------------------------------------------------------------------------------------ repvgg
def _repvgg(widths: tuple, trainable: int, stage3_blocks: int) -> dict:
    """A RepVGG row: level ``stage<i>`` has ``widths[i]`` channels at stride ``2 ** (i + 1)``."""
    c0, c1 = widths[0], widths[1]
    return dict(
        feature_info=[(f"stage{i}", c, 2 ** (i + 1)) for i, c in enumerate(widths)],
        cells=5, trainable=trainable,
        params={
            "stage0.rbr_dense.0.weight": (c0, 3, 3, 3),
            "stage0.rbr_dense.1.gamma": (c0,),
            "stage0.rbr_1x1.0.weight": (c0, 3, 1, 1),
            "stage0.rbr_1x1.1.moving_variance": (c0,),
            "stage1.0.rbr_dense.0.weight": (c1, c0, 3, 3),
            "stage1.1.rbr_identity.gamma": (c1,),
            "stage1.1.rbr_identity.moving_mean": (c1,),
            f"stage3.{stage3_blocks - 1}.rbr_identity.gamma": (widths[3],),
            "stage4.0.rbr_1x1.1.beta": (1280,),
            "linear.weight": (1000, 1280),
            "linear.bias": (1000,),
        },
        # strided / channel-changing blocks have no identity branch
        absent=["stage0.rbr_identity.gamma", "stage1.0.rbr_identity.gamma", "stage4.0.rbr_identity.gamma",
                f"stage3.{stage3_blocks}.rbr_dense.0.weight"])


REPVGG = dict(scenario=1, models={
    "repvgg_a0": _repvgg((48, 48, 96, 192, 1280), 9_108_968, stage3_blocks=14),
    "repvgg_a1": _repvgg((64, 64, 128, 256, 1280), 14_092_264, stage3_blocks=14),
    "repvgg_b0": _repvgg((64, 64, 128, 256, 1280), 15_817_960, stage3_blocks=16),
})

# ---------------------------------------------------------------------------------------------- convnext
_CONVNEXT_INFO = [("feature.1", 96, 4), ("feature.3", 192, 8), ("feature.5", 384, 16), ("feature.7", 768, 32)]

CONVNEXT = dict(scenario=2, models={
    "convnext_tiny": dict(
        feature_info=_CONVNEXT_INFO, cells=8, total=28_589_128,  # stages of 3, 3, 9, 3 blocks
        params={
            "feature.0.0.weight": (96, 3, 4, 4),  # stem conv
            "feature.0.0.bias": (96,),
            "feature.0.1.gamma": (96,),  # stem channels-first LayerNorm
            "feature.0.1.beta": (96,),
            "feature.1.0.dwconv.weight": (96, 1, 7, 7),
            "feature.1.0.dwconv.bias": (96,),
            "feature.1.0.norm.gamma": (96,),
            "feature.1.0.pwconv1.weight": (384, 96),
            "feature.1.0.pwconv1.bias": (384,),
            "feature.1.0.pwconv2.weight": (96, 384),
            "feature.1.0.gamma_": (96,),  # layer scale
            "feature.2.0.gamma": (96,),  # downsample: LayerNorm then 2x2 conv
            "feature.2.1.weight": (192, 96, 2, 2),
            "feature.5.8.pwconv2.bias": (384,),
            "feature.7.2.gamma_": (768,),
            "norm.gamma": (768,),
            "norm.beta": (768,),
            "classifier.weight": (1000, 768),
            "classifier.bias": (1000,),
        },
        absent=["feature.5.9.dwconv.weight", "feature.1.3.dwconv.weight", "feature.7.3.dwconv.weight"]),
    "convnext_small": dict(
        feature_info=_CONVNEXT_INFO, cells=8, total=50_223_688,  # stages of 3, 3, 27, 3 blocks
        params={"feature.0.0.weight": (96, 3, 4, 4), "feature.5.26.pwconv2.bias": (384,),
                "feature.5.26.gamma_": (384,), "feature.7.2.gamma_": (768,), "classifier.weight": (1000, 768)},
        absent=["feature.5.27.dwconv.weight", "feature.7.3.dwconv.weight"]),
})

# ------------------------------------------------------------------------------------------ efficientnet
_EFFICIENTNET_INFO = [
    ("features.2", 32, 2), ("features.3", 16, 2), ("features.4", 24, 4), ("features.5", 40, 8),
    ("features.6", 80, 16), ("features.7", 112, 16), ("features.8", 192, 32), ("features.9", 320, 32),
    ("features.12", 1280, 32),
]

EFFICIENTNET = dict(scenario=2, models={
    "efficientnet_b0": dict(
        feature_info=_EFFICIENTNET_INFO, cells=13, trainable=5_288_548,  # torchvision's count: the same layers
        params={
            "features.0.weight": (32, 3, 3, 3),
            "features.1.gamma": (32,),
            "features.3.0.block.0.weight": (32, 1, 3, 3),  # expand ratio 1: depthwise first
            "features.3.0.block.3.conv_reduce.weight": (8, 32, 1, 1),
            "features.3.0.block.3.conv_expand.bias": (32,),
            "features.3.0.block.4.weight": (16, 32, 1, 1),
            "features.4.0.block.0.weight": (96, 16, 1, 1),
            "features.4.1.block.6.conv_reduce.weight": (6, 144, 1, 1),
            "features.5.0.block.3.weight": (144, 1, 5, 5),
            "features.8.3.block.8.moving_variance": (192,),
            "features.9.0.block.7.weight": (320, 1152, 1, 1),
            "features.10.weight": (1280, 320, 1, 1),
            "features.11.moving_mean": (1280,),
            "mlp_head.weight": (1000, 1280),
            "mlp_head.bias": (1000,),
        },
        absent=["features.3.1.block.0.weight", "features.9.1.block.0.weight"]),
    "efficientnet_b1": dict(
        feature_info=_EFFICIENTNET_INFO, cells=13, trainable=7_794_184,
        params={
            "features.3.1.block.0.weight": (16, 1, 3, 3),
            "features.3.1.block.3.conv_reduce.weight": (4, 16, 1, 1),
            "features.8.4.block.8.gamma": (192,),
            "features.9.1.block.0.weight": (1920, 320, 1, 1),
            "features.10.weight": (1280, 320, 1, 1),
            "mlp_head.weight": (1000, 1280),
        },
        absent=["features.3.2.block.0.weight", "features.9.2.block.0.weight"]),
})

# ---------------------------------------------------------------------------------------------- hrnet
_HRNET_INFO = [("stem", 64, 2), ("stage1", 128, 4), ("stage2", 256, 8), ("stage3", 512, 16), ("stage4", 1024, 32)]

HRNET = dict(scenario=3, feature_class="HRNetFeatures", head=("downsample_modules.", "final_layer.", "classifier."),
             models={
    "hrnet_w18": dict(
        feature_info=_HRNET_INFO, total=21_346_380,  # branch widths 18, 36, 72, 144
        params={
            "conv1.weight": (64, 3, 3, 3),
            "layer1.0.conv3.weight": (256, 64, 1, 1),
            "transition1.0.0.weight": (18, 256, 3, 3),
            "transition1.1.0.0.weight": (36, 256, 3, 3),
            "stage2.0.fuse_layers.0.1.0.weight": (18, 36, 1, 1),
            "transition3.3.0.0.weight": (144, 72, 3, 3),
            "stage4.2.branches.3.3.conv2.weight": (144, 144, 3, 3),
            "incre_modules.0.0.conv1.weight": (32, 18, 1, 1),
            "incre_modules.3.0.down_sample.0.weight": (1024, 144, 1, 1),
            "final_layer.0.weight": (2048, 1024, 1, 1),
            "classifier.weight": (1000, 2048),
        },
        absent=["stage4.3.branches.0.0.conv1.weight"]),
    "hrnet_w32": dict(
        feature_info=_HRNET_INFO, total=41_303_464,  # branch widths 32, 64, 128, 256
        params={
            "conv1.weight": (64, 3, 3, 3),
            "bn1.gamma": (64,),
            "bn2.moving_variance": (64,),
            "layer1.0.conv3.weight": (256, 64, 1, 1),
            "layer1.0.down_sample.0.weight": (256, 64, 1, 1),
            "layer1.3.bn3.beta": (256,),
            "transition1.0.0.weight": (32, 256, 3, 3),
            "transition1.1.0.0.weight": (64, 256, 3, 3),
            "stage2.0.branches.1.3.conv2.weight": (64, 64, 3, 3),
            "stage2.0.fuse_layers.0.1.0.weight": (32, 64, 1, 1),  # deeper branch: 1x1 conv, then upsampling
            "stage2.0.fuse_layers.1.0.0.0.weight": (64, 32, 3, 3),  # shallower branch: strided 3x3
            "transition2.2.0.0.weight": (128, 64, 3, 3),
            "stage3.3.fuse_layers.2.0.0.0.weight": (32, 32, 3, 3),  # two strided steps, the first keeps the width
            "stage3.3.fuse_layers.2.0.1.0.weight": (128, 32, 3, 3),
            "transition3.3.0.0.weight": (256, 128, 3, 3),
            "stage4.2.branches.3.3.conv2.weight": (256, 256, 3, 3),
            "stage4.2.fuse_layers.3.0.2.1.moving_mean": (256,),
            "incre_modules.0.0.conv1.weight": (32, 32, 1, 1),
            "incre_modules.3.0.down_sample.0.weight": (1024, 256, 1, 1),
            "downsample_modules.2.0.weight": (1024, 512, 3, 3),
            "final_layer.0.weight": (2048, 1024, 1, 1),
            "classifier.weight": (1000, 2048),
        },
        absent=["stage4.3.branches.0.0.conv1.weight"]),  # three modules in stage 4
})

# ------------------------------------------------------------------------------------------- mobilenetv2
MOBILENETV2 = dict(scenario=2, models={
    "mobilenet_v2_100": dict(
        # the last block before each stride change; the head conv (features.20..22) is never built into it
        feature_info=[("features.3", 16, 2), ("features.5", 24, 4), ("features.8", 32, 8), ("features.15", 96, 16),
                      ("features.19", 320, 32)],
        cells=20, trainable=3_504_872,
        params={
            "features.0.weight": (32, 3, 3, 3),
            "features.1.gamma": (32,),
            "features.3.layers.0.weight": (32, 1, 3, 3),  # expansion 1: depthwise first
            "features.3.layers.3.weight": (16, 32, 1, 1),
            "features.4.layers.0.weight": (96, 16, 1, 1),  # expand
            "features.4.layers.3.weight": (96, 1, 3, 3),  # depthwise
            "features.4.layers.6.weight": (24, 96, 1, 1),  # project
            "features.4.layers.7.moving_variance": (24,),
            "features.19.layers.6.weight": (320, 960, 1, 1),
            "features.20.weight": (1280, 320, 1, 1),
            "features.21.beta": (1280,),
            "classifier.1.weight": (1000, 1280),
            "classifier.1.bias": (1000,),
        },
        absent=["features.3.layers.6.weight", "features.22.weight"]),
})

# ------------------------------------------------------------------------------------------- mobilenetv3
MOBILENETV3 = dict(scenario=2, models={
    "mobilenet_v3_small_100": dict(
        feature_info=[
            ("features.2", 16, 2), ("features.3", 16, 4), ("features.4", 24, 8), ("features.5", 24, 8),
            ("features.6", 40, 16), ("features.7", 40, 16), ("features.8", 40, 16), ("features.9", 48, 16),
            ("features.10", 48, 16), ("features.11", 96, 32), ("features.12", 96, 32), ("features.13", 96, 32),
            ("features.16", 576, 32),
        ],
        cells=17, trainable=2_542_856,  # torchvision's count: the same layers
        params={
            "features.0.weight": (16, 3, 3, 3),
            "features.1.gamma": (16,),
            "features.1.moving_variance": (16,),
            "features.3.layers.0.weight": (16, 1, 3, 3),  # no expand conv: depthwise first
            "features.3.layers.3.conv_reduce.weight": (8, 16, 1, 1),
            "features.3.layers.3.conv_expand.bias": (16,),
            "features.3.layers.4.weight": (16, 16, 1, 1),
            "features.4.layers.0.weight": (72, 16, 1, 1),
            "features.13.layers.6.conv_reduce.weight": (144, 576, 1, 1),
            "features.14.weight": (576, 96, 1, 1),
            "features.15.moving_mean": (576,),
            "classifier.0.weight": (1024, 576),
            "classifier.3.weight": (1000, 1024),
            "classifier.3.bias": (1000,),
        },
        absent=["features.17.weight"]),
    "mobilenet_v3_large_100": dict(
        feature_info=[
            ("features.2", 16, 2), ("features.3", 16, 2), ("features.4", 24, 4), ("features.5", 24, 4),
            ("features.6", 40, 8), ("features.7", 40, 8), ("features.8", 40, 8), ("features.9", 80, 16),
            ("features.10", 80, 16), ("features.11", 80, 16), ("features.12", 80, 16), ("features.13", 112, 16),
            ("features.14", 112, 16), ("features.15", 160, 32), ("features.16", 160, 32), ("features.17", 160, 32),
            ("features.20", 960, 32),
        ],
        cells=21, trainable=5_483_032,
        params={
            "features.0.weight": (16, 3, 3, 3),
            "features.3.layers.0.weight": (16, 1, 3, 3),
            "features.3.layers.4.beta": (16,),
            "features.6.layers.6.conv_reduce.weight": (24, 72, 1, 1),
            "features.17.layers.3.weight": (960, 1, 5, 5),
            "features.18.weight": (960, 160, 1, 1),
            "features.19.gamma": (960,),
            "classifier.0.weight": (1280, 960),
            "classifier.3.weight": (1000, 1280),
        },
        absent=["features.21.weight"]),
})

# ------------------------------------------------------------------------------------------------ rexnet
# (no exact count: MindCV publishes 4.84M and 7.61M, rounded)
REXNET = dict(scenario=2, models={
    "rexnet_10": dict(
        feature_info=[("features.0", 16, 2), ("features.2", 38, 4), ("features.4", 61, 8), ("features.10", 128, 16),
                      ("features.15", 185, 32)],
        cells=17,  # the stem (not sequential: kept as is), then features_0 .. features_15
        params={
            "stem.features.0.weight": (32, 3, 3, 3),
            "stem.features.1.gamma": (32,),
            "features.0.conv_dw.features.0.weight": (32, 1, 3, 3),  # exp ratio 1: no conv_exp
            "features.0.conv_pwl.features.0.weight": (16, 32, 1, 1),
            "features.1.conv_exp.features.0.weight": (96, 16, 1, 1),
            "features.1.conv_exp.features.1.moving_variance": (96,),
            "features.3.se.conv_reduce.weight": (19, 228, 1, 1),
            "features.3.se.bn.gamma": (19,),
            "features.3.se.conv_expand.bias": (228,),
            "features.15.conv_pwl.features.1.beta": (185,),
            "features.16.features.0.weight": (1280, 185, 1, 1),
            "features.16.features.1.moving_mean": (1280,),
            "cls.1.weight": (1000, 1280),
            "cls.1.bias": (1000,),
        },
        absent=["features.0.conv_exp.features.0.weight", "features.18.weight"]),
    # MindCV's widths for 1.3: int(round(c * 1.3)) of the unrounded 1.0 channel ramp
    "rexnet_13": dict(
        feature_info=[("features.0", 21, 2), ("features.2", 50, 4), ("features.4", 79, 8), ("features.10", 167, 16),
                      ("features.15", 240, 32)],
        cells=17,
        params={
            "stem.features.0.weight": (42, 3, 3, 3),
            "features.0.conv_pwl.features.0.weight": (21, 42, 1, 1),
            "features.15.conv_pwl.features.0.weight": (240, 1356, 1, 1),  # 6 * round(173.5 * 1.3)
            "features.16.features.0.weight": (1664, 240, 1, 1),
            "cls.1.weight": (1000, 1664),
        },
        absent=["features.0.conv_exp.features.0.weight"]),
})

# --------------------------------------------------------------------------------------------------- vgg
# The levels are the five max-pools; MindCV's convs have no bias. Counts exclude the moving statistics.
VGG = dict(scenario=2, models={
    "vgg11": dict(
        feature_info=[("features.2", 64, 2), ("features.5", 128, 4), ("features.10", 256, 8),
                      ("features.15", 512, 16), ("features.20", 512, 32)],
        cells=21, trainable=132_860_584,
        params={"features.0.weight": (64, 3, 3, 3), "features.18.weight": (512, 512, 3, 3),
                "classifier.0.weight": (4096, 25088), "classifier.3.bias": (4096,),
                "classifier.6.weight": (1000, 4096)},
        absent=["features.0.bias", "features.18.bias", "features.1.gamma"]),
    "vgg16": dict(
        feature_info=[("features.4", 64, 2), ("features.9", 128, 4), ("features.16", 256, 8),
                      ("features.23", 512, 16), ("features.30", 512, 32)],
        cells=31, trainable=138_353_320,
        params={"features.28.weight": (512, 512, 3, 3), "classifier.6.bias": (1000,)},
        absent=["features.28.bias"]),
    "vgg11_bn": dict(
        feature_info=[("features.3", 64, 2), ("features.7", 128, 4), ("features.14", 256, 8),
                      ("features.21", 512, 16), ("features.28", 512, 32)],
        cells=29, trainable=132_866_088,
        params={"features.0.weight": (64, 3, 3, 3), "features.1.gamma": (64,),
                "features.1.moving_mean": (64,), "features.25.weight": (512, 512, 3, 3),
                "features.26.moving_variance": (512,)},
        absent=["features.0.bias", "features.25.bias"]),
    "vgg16_bn": dict(
        feature_info=[("features.6", 64, 2), ("features.13", 128, 4), ("features.23", 256, 8),
                      ("features.33", 512, 16), ("features.43", 512, 32)],
        cells=44, trainable=138_361_768,
        params={"features.40.weight": (512, 512, 3, 3), "features.41.beta": (512,)},
        absent=["features.40.bias"]),
})

# ------------------------------------------------------------------------------------------------ vit
VIT = dict(scenario=3, feature_class="VisionTransformerFeatures", head=("norm.", "head."), models={
    "vit_b_16_224": dict(
        feature_info=[(f"blocks.{k}", 768, 16) for k in range(12)], total=86_567_656,  # MindCV's count
        default_out_indices=(3, 5, 7, 11),  # BEiT's and mmseg's multi-level setting
        params={
            "patch_embed.proj.weight": (768, 3, 16, 16),
            "cls_token": (1, 1, 768),
            "pos_embed": (1, 197, 768),  # one entry per 16x16 patch of 224x224, and the class token
            "blocks.11.attn.qkv.weight": (2304, 768),
            "blocks.11.mlp.fc1.weight": (3072, 768),
            "norm.gamma": (768,),
            "head.weight": (1000, 768),
        },
        absent=["blocks.12.norm1.gamma"]),
})

# --------------------------------------------------------------------------------------------- mobilevit
def _mobilevit(chs: list, hidden: tuple, dims: tuple, exp: int, trainable: int, total: int) -> dict:
    """A MobileViT row: ``layer_<i>`` has ``chs[i-1]`` channels at stride ``2 ** i``; ``hidden`` is the expanded
    width of layer_1 and of layer_2's blocks, ``dims`` the transformer widths of layers 3-5 (MindCV's
    get_config); layers 3, 4, 5 hold 2, 4, 3 transformer layers, then a LayerNorm."""
    d3, d4, d5 = dims
    return dict(
        feature_info=[(f"layer_{i}", c, 2 ** i) for i, c in enumerate(chs, start=1)],
        cells=6, trainable=trainable, total=total,
        params={
            "conv_1.features.0.weight": (16, 3, 3, 3),
            "conv_1.features.1.gamma": (16,),
            "layer_1.0.block.0.features.0.weight": (hidden[0], 16, 1, 1),
            "layer_1.0.block.2.features.1.moving_variance": (chs[0],),
            "layer_2.2.block.1.features.0.weight": (hidden[1], 1, 3, 3),  # depthwise
            "layer_3.0.block.2.features.0.weight": (chs[2], hidden[1], 1, 1),
            "layer_3.1.local_rep.0.features.0.weight": (chs[2], chs[2], 3, 3),
            "layer_3.1.local_rep.1.features.0.weight": (d3, chs[2], 1, 1),
            "layer_3.1.global_rep.0.pre_norm_mha.0.gamma": (d3,),
            "layer_3.1.global_rep.0.pre_norm_mha.1.qkv_proj.weight": (3 * d3, d3),
            "layer_3.1.global_rep.1.pre_norm_mha.1.out_proj.bias": (d3,),
            "layer_3.1.global_rep.1.pre_norm_ffn.1.weight": (2 * d3, d3),
            "layer_3.1.global_rep.1.pre_norm_ffn.4.weight": (d3, 2 * d3),
            "layer_3.1.global_rep.2.gamma": (d3,),
            "layer_3.1.conv_proj.features.0.weight": (chs[2], d3, 1, 1),
            "layer_3.1.fusion.features.0.weight": (chs[2], 2 * chs[2], 3, 3),
            "layer_4.1.global_rep.4.beta": (d4,),
            "layer_5.1.global_rep.2.pre_norm_ffn.4.bias": (d5,),
            "layer_5.1.global_rep.3.gamma": (d5,),
            "layer_5.1.fusion.features.1.moving_mean": (chs[4],),
            "conv_1x1_exp.features.0.weight": (exp, chs[4], 1, 1),
            "classifier.3.weight": (1000, exp), "classifier.3.bias": (1000,)},
        absent=["layer_1.1.block.0.features.0.weight", "layer_2.3.block.1.features.0.weight",
                "layer_3.1.global_rep.3.gamma", "layer_4.1.global_rep.5.gamma", "layer_5.1.global_rep.4.gamma",
                "layer_6.0.block.0.features.0.weight", "classifier.2.weight"])


MOBILEVIT = dict(scenario=1, models={
    # MindCV's counts: 1.27M, 2.32M, 5.58M trainable
    "mobilevit_xx_small": _mobilevit([16, 24, 48, 64, 80], (32, 48), (64, 80, 96), 320, 1_272_504, 1_277_096),
    "mobilevit_x_small": _mobilevit([32, 48, 64, 80, 96], (64, 192), (96, 120, 144), 384, 2_318_568, 2_327_736),
    "mobilevit_small": _mobilevit([32, 64, 96, 128, 160], (64, 256), (144, 192, 240), 640, 5_579_784, 5_593_192),
})

# --------------------------------------------------------------------------------------------------- swin
# MindCV appends its stages to an empty CellList, and MindSpore then names every stage's parameters after the
# list's first entry: stage 0 is "0.blocks.<i>...", stage s > 0 "0.blocks.<s>.blocks.<i>...", and MindCV's
# checkpoints carry these names. The stage cells are layers.0 .. layers.3.
SWIN = dict(scenario=3, feature_class="SwinTransformerFeatures", head=("norm.", "classifier."), models={
    "swin_tiny": dict(
        feature_info=[("layers.0", 96, 4), ("layers.1", 192, 8), ("layers.2", 384, 16), ("layers.3", 768, 32)],
        trainable=28_288_354, total=33_378_474,  # MindCV's counts; total adds the one-hot index and the masks
        params={
            "patch_embed.proj.weight": (96, 3, 4, 4),
            "patch_embed.norm.gamma": (96,),
            "0.blocks.0.attn.relative_bias.relative_position_bias_table": (169, 3),
            "0.blocks.0.attn.relative_bias.index": (2401, 169),  # non-trainable one-hot (49 x 49 pairs, 13 x 13)
            "0.blocks.0.attn.q.weight": (96, 96),
            "0.blocks.1.attn_mask": (1, 64, 1, 49, 49),  # the shifted block of stage 0: 8 x 8 windows
            "0.downsample.reduction.weight": (192, 384),
            "0.downsample.norm.gamma": (384,),
            "0.blocks.1.blocks.1.attn_mask": (1, 16, 1, 49, 49),
            "0.blocks.2.blocks.5.mlp.fc1.weight": (1536, 384),
            "0.blocks.2.blocks.5.attn_mask": (1, 4, 1, 49, 49),
            "0.blocks.2.downsample.reduction.weight": (768, 1536),
            "0.blocks.3.blocks.1.attn.relative_bias.relative_position_bias_table": (169, 24),
            "0.blocks.3.blocks.1.mlp.fc2.weight": (768, 3072),
            "norm.gamma": (768,),
            "classifier.weight": (1000, 768), "classifier.bias": (1000,),
        },
        absent=["0.blocks.2.blocks.6.norm1.gamma", "0.blocks.3.blocks.2.norm1.gamma",
                "0.blocks.3.downsample.reduction.weight", "0.blocks.3.blocks.1.attn_mask", "0.blocks.0.attn_mask",
                "layers.0.blocks.0.norm1.gamma"]),
})

# -------------------------------------------------------------------------------------------------- pvtv2
def _pvtv2(dims: tuple, depths: tuple, total: int) -> dict:
    """A PVTv2 row: stage ``i`` has ``dims[i]`` channels at stride ``4 * 2 ** i`` and ``depths[i]`` blocks; MLP
    ratios 8, 8, 4, 4, spatial-reduction convs of 8, 4, 2 (none in stage 3), MindCV's pvt_v2_b* configuration."""
    d0, d1, d2, d3 = dims
    return dict(
        feature_info=[(f"norm_list.{i}", c, 4 * 2 ** i) for i, c in enumerate(dims)], total=total,
        params={
            "patch_embed_list.0.proj.weight": (d0, 3, 7, 7),
            "patch_embed_list.0.norm.gamma": (d0,),
            "patch_embed_list.1.proj.weight": (d1, d0, 3, 3),
            "block_list.0.0.norm1.gamma": (d0,),
            "block_list.0.0.attn.q.weight": (d0, d0),
            "block_list.0.0.attn.q.bias": (d0,),
            "block_list.0.0.attn.kv.weight": (2 * d0, d0),
            "block_list.0.0.attn.sr.weight": (d0, d0, 8, 8),
            "block_list.0.0.attn.norm.beta": (d0,),
            "block_list.0.0.mlp.fc1.weight": (8 * d0, d0),
            "block_list.0.0.mlp.dwconv.dwconv.weight": (8 * d0, 1, 3, 3),
            "block_list.1.0.attn.sr.weight": (d1, d1, 4, 4),
            "block_list.2.0.attn.sr.weight": (d2, d2, 2, 2),
            "block_list.2.0.mlp.fc2.weight": (d2, 4 * d2),
            f"block_list.3.{depths[3] - 1}.mlp.fc2.weight": (d3, 4 * d3),
            f"block_list.2.{depths[2] - 1}.attn.proj.weight": (d2, d2),
            "norm_list.3.gamma": (d3,),
            "head.weight": (1000, d3), "head.bias": (1000,)},
        absent=[f"block_list.{i}.{n}.norm1.gamma" for i, n in enumerate(depths)]
        + ["block_list.3.0.attn.sr.weight", "block_list.3.0.attn.norm.gamma", "norm_list.4.gamma",
           "patch_embed_list.4.proj.weight"])


PVTV2 = dict(scenario=3, feature_class="PyramidVisionTransformerV2Features", head=("head.",), models={
    # MindCV's counts: 3.67M, 14.01M, 25.36M
    "pvt_v2_b0": _pvtv2((32, 64, 160, 256), (2, 2, 2, 2), 3_666_760),
    "pvt_v2_b1": _pvtv2((64, 128, 320, 512), (2, 2, 2, 2), 14_009_000),
    "pvt_v2_b2": _pvtv2((64, 128, 320, 512), (3, 4, 6, 3), 25_362_856),
})

FAMILIES = {
    "resnet": RESNET,
    "resnest": RESNEST,
    "repvgg": REPVGG,
    "convnext": CONVNEXT,
    "efficientnet": EFFICIENTNET,
    "hrnet": HRNET,
    "mobilenetv2": MOBILENETV2,
    "mobilenetv3": MOBILENETV3,
    "rexnet": REXNET,
    "vgg": VGG,
    "vit": VIT,
    "pvtv2": PVTV2,
    "mobilevit": MOBILEVIT,
    "swin": SWIN,
}
