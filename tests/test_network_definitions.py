"""The pre-defined image networks: shapes, layer names, parameter counts and the torch compilation."""
from __future__ import annotations

import numpy as np
import pytest

from deepwater import networks
from deepwater.errors import ParameterError
from deepwater.networks import Graph, build_graph

IMAGE_NETWORKS = ["alexnet", "vgg", "vgg11", "vgg13", "vgg16", "vgg19", "googlenet", "inception_bn",
                  "resnet", "resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v2",
                  "efficientnet_lite0"]
SMALL_SHAPES = [(1, 28, 28), (3, 32, 32)]
# the smallest square side each accepts; the padded networks take anything down to 1x1
SMALLEST = {"alexnet": 7, "vgg": 16, "vgg11": 16, "vgg13": 16, "vgg16": 16, "vgg19": 16, "googlenet": 1,
            "inception_bn": 1, "resnet": 1, "resnet18": 1, "resnet34": 1, "resnet50": 1, "resnet101": 1,
            "mobilenet_v2": 1, "efficientnet_lite0": 1}


def check_names(graph: Graph, n_outputs: int) -> None:
    names = graph.layer_names()
    assert len(names) == len(set(names))
    assert "global_pool" in names
    assert graph.output.name == "output"
    assert graph.output.shape == (n_outputs,)


# --------------------------------------------------------------------------- building

@pytest.mark.parametrize("name", IMAGE_NETWORKS)
def test_builds_at_its_default_shape(name):
    spec = networks.get(name)
    assert spec.needs_image and spec.default_image_shape == (224, 224)
    graph = build_graph(name, (3, *spec.default_image_shape), 1000)
    check_names(graph, 1000)
    assert graph.node("global_pool").inputs and len(graph.node("global_pool").shape) == 1


@pytest.mark.parametrize("shape", SMALL_SHAPES, ids=["28x28x1", "32x32x3"])
@pytest.mark.parametrize("name", IMAGE_NETWORKS)
def test_builds_for_small_images_with_the_same_names_less_pool1(name, shape):
    small = build_graph(name, shape, 10)
    check_names(small, 10)
    large = build_graph(name, (shape[0], 224, 224), 10)
    assert set(small.layer_names()) == set(large.layer_names()) - {"pool1"}
    assert small.node("global_pool").shape == large.node("global_pool").shape


@pytest.mark.parametrize("name, layers", [
    ("alexnet", ["conv1", "conv1_relu", "pool1", "conv5_relu", "pool5", "fc6", "fc6_relu", "fc6_dropout", "fc7_dropout"]),
    ("vgg16", ["conv1_1", "conv1_2_relu", "pool1", "conv5_3", "pool5", "fc6", "fc7_dropout"]),
    ("vgg19", ["conv3_4", "conv5_4_relu"]),
    ("googlenet", ["conv1", "pool1", "conv2_reduce", "conv2", "pool2", "inception3a_1x1", "inception3a_3x3_reduce",
                   "inception3a_5x5", "inception3a_pool", "inception3a_pool_proj_relu", "inception3a_concat", "pool3",
                   "inception4e_concat", "pool4", "inception5b_concat", "dropout"]),
    ("inception_bn", ["conv1", "conv1_bn", "conv1_relu", "pool1", "conv2_reduce_bn", "pool2", "inception3a_1x1_bn",
                      "inception3a_double_3x3_2_relu", "inception3a_pool_proj", "inception3c_3x3",
                      "inception3c_pool", "inception4e_double_3x3_2", "inception5b_concat"]),
    ("resnet18", ["conv1", "conv1_bn", "conv1_relu", "pool1", "stage2_block2_conv2_bn", "stage2_block2_add",
                  "stage3_block1_shortcut", "stage3_block1_shortcut_bn", "stage5_block2_relu"]),
    ("resnet50", ["stage2_block1_shortcut_bn", "stage2_block3_conv3_bn", "stage4_block6_relu", "stage5_block3_add"]),
    ("mobilenet_v2", ["conv1", "conv1_bn", "conv1_relu", "block1_dw", "block1_dw_bn", "block1_dw_relu",
                      "block1_project", "block1_project_bn", "block2_expand", "block2_expand_bn", "block2_expand_relu",
                      "block3_add", "block17_project_bn", "conv_last", "conv_last_bn", "conv_last_relu", "dropout"]),
])
def test_documented_layer_names(name, layers):
    names = build_graph(name, (3, 224, 224), 1000).layer_names()
    assert set(layers) <= set(names)


def test_identity_shortcuts_only_where_the_shape_is_kept():
    names = build_graph("resnet18", (3, 224, 224), 1000).layer_names()
    shortcuts = sorted(n for n in names if n.endswith("_shortcut"))
    assert shortcuts == ["stage3_block1_shortcut", "stage4_block1_shortcut", "stage5_block1_shortcut"]
    names = build_graph("resnet50", (3, 224, 224), 1000).layer_names()
    assert "stage2_block1_shortcut" in names and "stage2_block2_shortcut" not in names


def test_conv_layers_before_batch_norm_have_no_bias():
    for name in ("inception_bn", "resnet50", "mobilenet_v2"):
        graph = build_graph(name, (3, 32, 32), 10)
        convs = [n for n in graph.nodes if n.op == "conv"]
        assert convs and not any(n.attrs["bias"] for n in convs)
        assert all(f"{n.name}_bn" in graph.layer_names() for n in convs)


def test_auto_prefers_inception_bn_for_images():
    assert networks.resolve_auto("auto", is_image=True) == "inception_bn"
    assert networks.resolve_auto("VGG", is_image=True) == "vgg"


# --------------------------------------------------------------------------- image sizes

@pytest.mark.parametrize("name", IMAGE_NETWORKS)
def test_smallest_image_size(name):
    smallest = SMALLEST[name]
    assert networks.smallest_image_size(networks.get(name), 3, 10) == smallest
    build_graph(name, (3, smallest, smallest), 10)
    if smallest == 1:
        return
    with pytest.raises(ParameterError) as info:
        build_graph(name, (3, smallest - 1, smallest - 1), 10)
    assert f"The smallest image_shape it accepts is [{smallest}, {smallest}]" in str(info.value)


@pytest.mark.parametrize("name", ["alexnet", "vgg"])
def test_4x4_is_too_small_and_the_message_says_so(name):
    with pytest.raises(ParameterError) as info:
        build_graph(name, (1, 4, 4), 10)
    message = str(info.value)
    assert "image_shape=[4, 4] is too small" in message and f"network={name!r}" in message
    assert f"[{SMALLEST[name]}, {SMALLEST[name]}]" in message


def test_non_square_images():
    graph = build_graph("resnet18", (3, 40, 100), 10)
    assert graph.node("global_pool").shape == (512,)
    assert "pool1" not in graph.layer_names()  # small stem: the short side decides


# --------------------------------------------------------------------------- parameter counts

def conv(cin: int, cout: int, k: int, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def dense(units_in: int, units_out: int) -> int:
    return units_in * units_out + units_out


def bn(c: int) -> int:
    return 2 * c


def alexnet_count(c: int, n: int) -> int:
    convs = conv(c, 96, 11) + conv(96, 256, 5) + conv(256, 384, 3) + conv(384, 384, 3) + conv(384, 256, 3)
    return convs + dense(256, 4096) + dense(4096, 4096) + dense(4096, n)


VGG_LAYOUT = {  # filters per conv, "M" a max pool (the paper's configurations A, B, D, E)
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def vgg_count(depth: int, c: int, n: int, head_inputs: int = 512) -> int:
    total = 0
    for filters in (f for f in VGG_LAYOUT[depth] if f != "M"):
        total, c = total + conv(c, filters, 3), filters
    return total + dense(head_inputs, 4096) + dense(4096, 4096) + dense(4096, n)


GOOGLENET_TABLE = [  # Szegedy et al. 2014, Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
    (64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), (192, 96, 208, 16, 48, 64),
    (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64),
    (256, 160, 320, 32, 128, 128), (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128),
]


def googlenet_count(c: int, n: int) -> int:
    total, c = conv(c, 64, 7) + conv(64, 64, 1) + conv(64, 192, 3), 192
    for n1, n3r, n3, n5r, n5, proj in GOOGLENET_TABLE:
        total += conv(c, n1, 1) + conv(c, n3r, 1) + conv(n3r, n3, 3) + conv(c, n5r, 1) + conv(n5r, n5, 5)
        total, c = total + conv(c, proj, 1), n1 + n3 + n5 + proj
    return total + dense(c, n)


INCEPTION_BN_TABLE = [  # Ioffe & Szegedy 2015, Figure 5: #1x1, #3x3 reduce, #3x3, double reduce, double, proj
    (64, 64, 64, 64, 96, 32), (64, 64, 96, 64, 96, 64), (0, 128, 160, 64, 96, 0),
    (224, 64, 96, 96, 128, 128), (192, 96, 128, 96, 128, 128), (160, 128, 160, 128, 160, 128),
    (96, 128, 192, 160, 192, 128), (0, 128, 192, 192, 256, 0),
    (352, 192, 320, 160, 224, 128), (352, 192, 320, 192, 224, 128),
]


def conv_bn(cin: int, cout: int, k: int) -> int:
    return conv(cin, cout, k, bias=False) + bn(cout) if cout else 0


def inception_bn_count(c: int, n: int) -> int:
    total, c = conv_bn(c, 64, 7) + conv_bn(64, 64, 1) + conv_bn(64, 192, 3), 192
    for n1, n3r, n3, nd3r, nd3, proj in INCEPTION_BN_TABLE:
        total += conv_bn(c, n1, 1) + conv_bn(c, n3r, 1) + conv_bn(n3r, n3, 3)
        total += conv_bn(c, nd3r, 1) + conv_bn(nd3r, nd3, 3) + conv_bn(nd3, nd3, 3) + conv_bn(c, proj, 1)
        c = n1 + n3 + nd3 + (proj or c)  # reducing modules pass the pooled input through
    return total + dense(c, n)


def test_alexnet_count():
    assert build_graph("alexnet", (3, 224, 224), 1000).param_count() == alexnet_count(3, 1000) == 25_678_184


@pytest.mark.parametrize("depth", [11, 13, 16, 19])
def test_vgg_counts(depth):
    assert build_graph(f"vgg{depth}", (3, 224, 224), 1000).param_count() == vgg_count(depth, 3, 1000)


def test_vgg16_count_is_torchvisions_less_the_flatten_head():
    torchvision_vgg16 = 138_357_544  # fc6 there reads a flattened 512x7x7 map
    assert vgg_count(16, 3, 1000, head_inputs=512 * 7 * 7) == torchvision_vgg16
    expected = torchvision_vgg16 - (512 * 7 * 7 - 512) * 4096
    assert build_graph("vgg", (3, 224, 224), 1000).param_count() == expected == 37_694_248


def test_googlenet_count():
    count = build_graph("googlenet", (3, 224, 224), 1000).param_count()
    assert count == googlenet_count(3, 1000) == 6_998_552
    # torchvision's googlenet (no aux heads) has 6,624,904: batch norm instead of conv biases, and 3x3
    # kernels in its "5x5" branches
    conv_channels = 64 + 64 + 192 + sum(sum(row) for row in GOOGLENET_TABLE)
    five_by_five = sum(n5r * n5 * (25 - 9) for _, _, _, n5r, n5, _ in GOOGLENET_TABLE)
    assert count == 6_624_904 + five_by_five - conv_channels


def test_inception_bn_count():
    assert build_graph("inception_bn", (3, 224, 224), 1000).param_count() == inception_bn_count(3, 1000) == 11_285_224


@pytest.mark.parametrize("name, torchvision_count", [
    ("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032), ("resnet101", 44_549_160),
    ("resnet", 25_557_032),
])
def test_resnet_counts_match_torchvision(name, torchvision_count):
    assert build_graph(name, (3, 224, 224), 1000).param_count() == torchvision_count


def test_mobilenet_v2_matches_torchvision():
    graph = build_graph("mobilenet_v2", (3, 224, 224), 1000)
    assert graph.param_count() == 3_504_872
    assert "block1_expand" not in graph.layer_names()  # the first block does not expand
    adds = [n.name for n in graph.nodes if n.op == "add"]  # stride 1 and unchanged channels only
    assert adds == [f"block{i}_add" for i in (3, 5, 6, 8, 9, 10, 12, 13, 15, 16)]
    depthwise = [n for n in graph.nodes if n.name.endswith("_dw")]
    assert len(depthwise) == 17 and all(n.attrs["groups"] == n.attrs["filters"] for n in depthwise)
    assert graph.param_shapes()["block2_dw.weight"] == (96, 1, 3, 3)
    assert {n.attrs["kind"] for n in graph.nodes if n.op == "act"} == {"relu6"}
    assert graph.node("global_pool").shape == (1280,) and graph.node("dropout").attrs["rate"] == 0.2


@pytest.mark.parametrize("name", IMAGE_NETWORKS)
def test_channels_change_only_the_first_conv(name):
    grey, colour = (build_graph(name, (c, 224, 224), 1000).param_count() for c in (1, 3))
    first = next(n for n in build_graph(name, (3, 224, 224), 1000).nodes if n.op == "conv")
    assert colour - grey == 2 * first.attrs["filters"] * first.attrs["kernel"] ** 2


# --------------------------------------------------------------------------- torch backend

def torch_net(graph: Graph, n_outputs: int):
    torch_net_module = pytest.importorskip("deepwater.backends.torch.net")
    from deepwater.specs import OptimizerSpec, TaskSpec

    task = TaskSpec("classification", n_outputs, "cross_entropy", "multinomial")
    return torch_net_module.TorchNet(graph, task, OptimizerSpec(), "cpu", 7)


def trainable(net) -> int:
    return sum(p.numel() for p in net.module.parameters() if p.requires_grad)


@pytest.mark.parametrize("shape", SMALL_SHAPES, ids=["28x28x1", "32x32x3"])
@pytest.mark.parametrize("name", IMAGE_NETWORKS)
def test_torch_compiles_small_networks(name, shape):
    graph = build_graph(name, shape, 10)
    net = torch_net(graph, 10)
    assert trainable(net) == graph.param_count()
    x = np.random.default_rng(0).normal(size=(2, *shape)).astype(np.float32)
    probabilities = net.predict(x)
    assert probabilities.shape == (2, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert net.features(x, "global_pool").shape == (2, *graph.node("global_pool").shape)
    assert sorted(net.get_state()) == sorted(graph.state_shapes())


def test_torch_resnet18_at_224_matches_torchvision():
    graph = build_graph("resnet18", (3, 224, 224), 1000)
    net = torch_net(graph, 1000)
    assert trainable(net) == graph.param_count() == 11_689_512
    probabilities = net.predict(np.zeros((1, 3, 224, 224), np.float32))
    assert probabilities.shape == (1, 1000)
    np.testing.assert_allclose(probabilities.sum(), 1.0, atol=1e-5)
