"""resnet_course.draw: the traced graph is the module's, and the drawing is the graph."""

import matplotlib
import pytest
import torch
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from torch import nn

from resnet_course import BasicBlock, Bottleneck, resnet18, resnet20, resnet50
from resnet_course.draw import draw_block, draw_graph, draw_network, fuse, layout, trace
from resnet_course.layers import conv1x1

matplotlib.use("Agg")


def projection(inplanes: int, outplanes: int, stride: int) -> nn.Sequential:
    return nn.Sequential(conv1x1(inplanes, outplanes, stride), nn.BatchNorm2d(outplanes))


def test_identity_block_graph_follows_forward():
    g = trace(BasicBlock(64, 64), (64, 56, 56))
    assert [n.kind for n in g.nodes] == [
        "input", "conv", "bn", "relu", "conv", "bn", "add", "relu", "output"
    ]  # fmt: skip
    assert [n.module for n in g.nodes[1:6]] == ["conv1", "bn1", "relu", "conv2", "bn2"]
    add = g.of_kind("add")[0]
    assert [g[i].module or g[i].kind for i in add.inputs] == ["bn2", "input"]  # the identity
    assert all(n.shape == (64, 56, 56) for n in g.nodes)


def test_projection_block_has_its_shortcut_and_shapes():
    block = BasicBlock(64, 128, 2, projection(64, 128, 2))
    g = trace(block, (64, 56, 56))
    by_module = {n.module: n for n in g.nodes if n.module}
    assert by_module["conv1"].shape == (128, 28, 28) and by_module["conv1"].label == [
        "3x3 conv, 128, /2"
    ]
    assert by_module["downsample.0"].inputs == [g.nodes[0].name]  # reads the block's input
    add = g.of_kind("add")[0]
    assert {g[i].module for i in add.inputs} == {"bn2", "downsample.1"}
    assert len(g.of_kind("conv")) == sum(isinstance(m, nn.Conv2d) for m in block.modules())


def test_bottleneck_stride_is_on_the_3x3():
    g = trace(Bottleneck(256, 128, 2, projection(256, 512, 2)), (256, 56, 56))
    convs = {n.module: n for n in g.of_kind("conv")}
    assert convs["conv1"].shape == (128, 56, 56) and convs["conv2"].shape == (128, 28, 28)
    assert convs["conv2"].label == ["3x3 conv, 128, /2"] and convs["conv3"].shape == (512, 28, 28)


def test_resnet18_graph_has_every_conv_and_eight_skip_connections():
    model = resnet18()
    g = trace(model, (3, 224, 224))
    assert len(g.of_kind("conv")) == sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 20
    adds = g.of_kind("add")
    assert len(adds) == 8 and all(len(a.inputs) == 2 for a in adds)
    sources = [g[a.inputs[1]].module for a in adds]  # the shortcut of each block
    assert sources == [
        "maxpool", "layer1.0.relu",
        "layer2.0.downsample.1", "layer2.0.relu",
        "layer3.0.downsample.1", "layer3.0.relu",
        "layer4.0.downsample.1", "layer4.0.relu",
    ]  # fmt: skip
    assert g.nodes[-2].module == "fc" and g.nodes[-2].shape == (1000,)


def test_small_input_stem_leaves_out_the_identity_maxpool_and_check_images():
    g = trace(resnet18(small_input=True), (3, 32, 32))
    assert "maxpool" not in {n.module for n in g.nodes}
    first_add = g.of_kind("add")[0]
    assert g[first_add.inputs[1]].module == "relu"  # the stem's ReLU feeds layer1 directly
    assert all(n.kind != "other" for n in g.nodes)  # check_images is not drawn


def test_cifar_option_a_shortcut_is_one_node():
    g = trace(resnet20(), (3, 32, 32))
    pads = [n for n in g.nodes if n.label == ["PadShortcut"]]
    assert [p.module for p in pads] == ["layer2.0.downsample", "layer3.0.downsample"]
    assert pads[0].shape == (32, 16, 16)


def test_fuse_merges_conv_bn_relu_and_add_relu():
    g = fuse(trace(resnet18(), (3, 224, 224)))
    assert not g.of_kind("bn") and not g.of_kind("relu")
    assert len(g.of_kind("conv")) == 20 and len(g.of_kind("add")) == 8
    stem = g.nodes[1]
    assert stem.label == ["7x7 conv, 64, /2", "BN", "ReLU"] and stem.shape == (64, 112, 112)
    assert g.of_kind("add")[0].label == ["+", "ReLU"]
    assert len(g.nodes) == 34  # input, stem, pool, 19 convs, 8 additions, pool, flatten, fc, output
    # The fused graph still has every skip connection: each addition reads two nodes.
    assert all(len(a.inputs) == 2 for a in g.of_kind("add"))


def test_layout_puts_the_shortcut_beside_the_main_path():
    g = trace(BasicBlock(64, 128, 2, projection(64, 128, 2)), (64, 56, 56))
    place = layout(g)
    main = [n.name for n in g.nodes if place[n.name][2]]
    assert [g[m].module for m in main][1:6] == ["conv1", "bn1", "relu", "conv2", "bn2"]
    ds0, ds1 = (n.name for n in g.nodes if n.module.startswith("downsample"))
    add = g.of_kind("add")[0].name
    assert place[g.nodes[0].name][1] < place[ds0][1] < place[ds1][1] < place[add][1]


def test_breaks_start_new_columns():
    g = fuse(trace(resnet18(), (3, 224, 224)))
    place = layout(g, breaks=("layer3",))
    columns = {n.module.split(".")[0]: place[n.name][0] for n in g.nodes if n.module}
    assert columns["layer2"] == 0 and columns["layer3"] == columns["fc"] == 1
    first = next(n for n in g.nodes if n.module.startswith("layer3"))
    assert place[first.name][1] == 0


def _boxes_and_arrows(fig):
    ax = fig.axes[0]
    boxes = {p.get_gid(): p for p in ax.patches if isinstance(p, FancyBboxPatch)}
    arrows = {p.get_gid(): p for p in ax.patches if isinstance(p, FancyArrowPatch)}
    return boxes, arrows


def _touches(point, box, tol=0.03) -> bool:
    """True if the point lies on or within ``tol`` inches of the box (an arrow's tip is drawn a
    hair short of it)."""
    x, y = point
    x0, y0 = box.get_x(), box.get_y()
    return (x0 - tol <= x <= x0 + box.get_width() + tol) and (
        y0 - tol <= y <= y0 + box.get_height() + tol
    )


@pytest.mark.parametrize(
    "graph, breaks",
    [
        (trace(BasicBlock(64, 64), (64, 56, 56)), ()),
        (trace(BasicBlock(64, 128, 2, projection(64, 128, 2)), (64, 56, 56)), ()),
        (trace(Bottleneck(256, 64), (256, 56, 56)), ()),
        (fuse(trace(resnet18(), (3, 224, 224))), ("layer3",)),
        (fuse(trace(resnet50().layer1, (64, 56, 56))), ("2",)),
    ],
    ids=["identity", "projection", "bottleneck", "resnet18", "resnet50-layer1"],
)
def test_drawing_has_one_box_per_node_and_one_arrow_per_edge_joining_them(graph, breaks):
    fig = draw_graph(graph, breaks=breaks)
    boxes, arrows = _boxes_and_arrows(fig)
    assert set(boxes) == {n.name for n in graph.nodes}
    assert set(arrows) == {f"{a}->{b}" for a, b in graph.edges}
    for a, b in graph.edges:
        path = arrows[f"{a}->{b}"].get_path().vertices[:-1]  # the last closes the head
        assert _touches(path[0], boxes[a]), f"{a}->{b} does not start at {a}"
        assert any(_touches(v, boxes[b]) for v in path[-5:]), f"{a}->{b} does not end at {b}"
    texts = {t.get_gid(): t.get_text() for t in fig.axes[0].texts if t.get_gid()}
    for n in graph.nodes:
        assert n.label[0] in texts[f"text:{n.name}"]
    matplotlib.pyplot.close(fig)


def test_draw_block_writes_names_and_shapes():
    fig = draw_block(BasicBlock(64, 128, 2, projection(64, 128, 2)), (64, 56, 56))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "conv1: 3x3 conv, 128, /2\n128×28×28" in texts
    assert "downsample.0: 1x1 conv, 128, /2\n128×28×28" in texts
    matplotlib.pyplot.close(fig)


def test_draw_network_leaves_the_model_as_it_was():
    model = resnet18()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fig = draw_network(model, (3, 224, 224), breaks=("layer3",))
    assert model.training and next(model.parameters()).device == torch.device("cpu")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    matplotlib.pyplot.close(fig)


def test_identity_shortcuts_share_no_line_with_projections():
    """A reader must not see a projection's output run on into the next block's addition."""
    graph = fuse(trace(resnet18(), (3, 224, 224)))
    fig = draw_graph(graph, breaks=("layer3",))
    _, arrows = _boxes_and_arrows(fig)
    side = {n.name for n in graph.nodes if n.kind == "conv" and "1x1" in n.label[0]}
    adds = {n.name for n in graph.of_kind("add")}
    projection_x = {
        round(v[0], 3)
        for gid, arrow in arrows.items()
        if gid.split("->")[0] in side
        for v in arrow.get_path().vertices[:-1]
    }
    for gid, arrow in arrows.items():
        a, b = gid.split("->")
        if a in adds and b in adds:  # an identity shortcut from one block's output to the next
            lane = {round(v[0], 3) for v in arrow.get_path().vertices[1:3]}
            assert not lane & projection_x, f"{gid} runs in a projection's lane"
    matplotlib.pyplot.close(fig)
