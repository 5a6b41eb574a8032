"""frontend.links: each tensor's producer and readers, read once from the graph."""

from onnx import TensorProto, helper

from edgeprune.frontend.links import Links


def graph():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu"),
             helper.make_node("Mul", ["a", "a"], ["b"], name="square"),
             helper.make_node("Dropout", ["b"], ["y", ""], name="drop")]
    return helper.make_graph(nodes, "g", [x], [y])


def test_producers_and_readers():
    links = Links(graph())
    assert links.producer("a").name == "relu" and links.producer("x") is None
    assert [n.name for n in links.readers("b")] == ["drop"] and links.readers("y") == []
    assert links.graph_outputs == {"y"}


def test_a_node_reading_a_tensor_twice_uses_it_twice():
    assert Links(graph()).uses("a") == 2


def test_empty_names_are_not_tensors():
    links = Links(graph())
    assert "" not in links.producers and links.read() == {"x", "a", "b"}
