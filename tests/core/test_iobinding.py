"""IO binding on CPU (every path the API allows there) and on CUDA where it is available."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from workbench import zoo
from workbench.core.iobinding import (
    BoundTensor,
    Device,
    IOBinder,
    bound_session,
    cuda_available,
    cuda_graph_session,
    graph_capture_enabled,
    parse_device,
    resolve_output_shapes,
    session_config_for,
)
from workbench.core.session import SessionConfig, open_session
from workbench.errors import FeedError, InvalidInputError, ProviderError

requires_cuda = pytest.mark.skipif(
    not cuda_available(), reason="needs a CUDA GPU, torch with CUDA and onnxruntime-gpu"
)
requires_no_cuda = pytest.mark.skipif(cuda_available(), reason="checks the error raised where CUDA is missing")


class TwoInTwoOut(nn.Module):
    """A float and an int64 input sharing the 'batch' axis; the second output's dim has no input's name."""

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * 2, (x.sum(1) + idx).reshape(-1, 1).flatten()


def _export(model: nn.Module, args: tuple[torch.Tensor, ...], path: Path, **kwargs: Any) -> Path:
    with torch.no_grad():
        torch.onnx.export(model, args, str(path), dynamo=False, **kwargs)
    return path


@pytest.fixture(scope="module")
def mlp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    m = zoo.get("mlp", smoke=True)
    return _export(m.model, m.example_inputs, tmp_path_factory.mktemp("iob") / "mlp.onnx",
                   input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})


@pytest.fixture(scope="module")
def two_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    args = (torch.randn(3, 4), torch.arange(3))
    return _export(TwoInTwoOut(), args, tmp_path_factory.mktemp("iob") / "two.onnx",
                   input_names=["x", "idx"], output_names=["a", "b"],
                   dynamic_axes={"x": {0: "batch"}, "idx": {0: "batch"}, "a": {0: "batch"}})


@pytest.fixture(scope="module")
def mlp_session(mlp_path: Path) -> ort.InferenceSession:
    return open_session(mlp_path, SessionConfig(intra_op_threads=1))


@pytest.fixture(scope="module")
def two_session(two_path: Path) -> ort.InferenceSession:
    return open_session(two_path, SessionConfig(intra_op_threads=1))


def _reference(session: ort.InferenceSession, feed: dict[str, Any]) -> dict[str, np.ndarray]:
    arrays = {k: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v for k, v in feed.items()}
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, arrays)))


# ---- inputs: numpy and torch, without copies -------------------------------------------------


def test_numpy_inputs_ort_allocated_outputs_match_session_run(two_session: ort.InferenceSession) -> None:
    feed = {"x": np.random.default_rng(0).standard_normal((3, 4), dtype=np.float32), "idx": np.arange(3)}
    binder = IOBinder(two_session)
    binder.bind_inputs(feed)
    binder.bind_outputs(None)
    out = binder.run()
    ref = _reference(two_session, feed)
    assert list(out) == ["a", "b"]
    assert all(isinstance(v, np.ndarray) for v in out.values())
    np.testing.assert_array_equal(out["a"], ref["a"])
    np.testing.assert_array_equal(out["b"], ref["b"])


def test_torch_input_is_read_in_place_zero_copy(mlp_session: ort.InferenceSession) -> None:
    x = torch.randn(3, 16)
    binder = IOBinder(mlp_session)
    binder.bind_inputs((x,))
    first = binder.run()["y"].copy()
    np.testing.assert_array_equal(first, _reference(mlp_session, {"x": x})["y"])
    x.mul_(-3.0).add_(1.0)  # in place, no rebinding: ORT must see it through the same pointer
    second = binder.run()["y"]
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(second, _reference(mlp_session, {"x": x})["y"])
    assert binder.inputs["x"] is x
    assert binder.bindings()[0].data_ptr == x.data_ptr()


def test_numpy_input_is_read_in_place_zero_copy(mlp_session: ort.InferenceSession) -> None:
    x = np.ones((2, 16), dtype=np.float32)
    binder = IOBinder(mlp_session)
    binder.bind_inputs({"x": x})
    first = binder.run()["y"].copy()
    x[:] = np.linspace(-1, 1, 32, dtype=np.float32).reshape(2, 16)
    second = binder.run()["y"]
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(second, _reference(mlp_session, {"x": x})["y"])


def test_binder_keeps_bound_memory_alive(mlp_session: ort.InferenceSession) -> None:
    binder = IOBinder(mlp_session)
    x = torch.randn(4, 16)
    expected = _reference(mlp_session, {"x": x})["y"]
    binder.bind_inputs((x,))
    del x
    gc.collect()
    _ = [torch.full((4, 16), 7.0) for _ in range(200)]  # would reuse freed memory
    np.testing.assert_array_equal(binder.run()["y"], expected)


def test_single_array_is_accepted_for_single_input_model(mlp_session: ort.InferenceSession) -> None:
    binder = IOBinder(mlp_session)
    x = torch.randn(2, 16)
    binder.bind_inputs(x)
    np.testing.assert_array_equal(binder.run()["y"], _reference(mlp_session, {"x": x})["y"])


# ---- outputs: pre-allocated and ORT-allocated -------------------------------------------------


def test_preallocated_torch_output_is_filled_in_place(mlp_session: ort.InferenceSession) -> None:
    x = torch.randn(5, 16)
    y = torch.full((5, 4), float("nan"))
    ptr = y.data_ptr()
    binder = IOBinder(mlp_session)
    binder.bind_inputs({"x": x})
    binder.bind_outputs({"y": y})
    out = binder.run()
    assert out["y"] is y and y.data_ptr() == ptr
    np.testing.assert_array_equal(y.numpy(), _reference(mlp_session, {"x": x})["y"])
    x.copy_(torch.randn(5, 16))
    binder.run()  # overwrites the same buffer
    np.testing.assert_array_equal(y.numpy(), _reference(mlp_session, {"x": x})["y"])


def test_preallocated_numpy_output(mlp_session: ort.InferenceSession) -> None:
    x = np.random.default_rng(1).standard_normal((2, 16), dtype=np.float32)
    y = np.zeros((2, 4), dtype=np.float32)
    binder = IOBinder(mlp_session)
    binder.bind_inputs((x,))
    binder.bind_outputs({"y": y})
    assert binder.run()["y"] is y
    np.testing.assert_array_equal(y, _reference(mlp_session, {"x": x})["y"])


def test_mixed_preallocated_and_ort_allocated_outputs(two_session: ort.InferenceSession) -> None:
    feed = {"x": torch.randn(3, 4), "idx": torch.arange(3)}
    a = torch.empty(3, 4)
    binder = IOBinder(two_session)
    binder.bind_inputs(feed)
    binder.bind_outputs({"a": a})
    out = binder.run()
    ref = _reference(two_session, feed)
    assert out["a"] is a and isinstance(out["b"], np.ndarray)
    np.testing.assert_array_equal(a.numpy(), ref["a"])
    np.testing.assert_array_equal(out["b"], ref["b"])
    assert [(b.name, b.kind) for b in binder.bindings() if b.role == "output"] == [("a", "torch"), ("b", "ort")]


def test_ort_allocated_outputs_are_not_overwritten_by_later_runs(mlp_session: ort.InferenceSession) -> None:
    x = torch.randn(3, 16)
    binder = IOBinder(mlp_session)
    binder.bind_inputs((x,))
    results, refs = [], []
    for _ in range(4):
        x.normal_()
        results.append(binder.run()["y"])
        refs.append(_reference(mlp_session, {"x": x})["y"])
    for got, ref in zip(results, refs):
        np.testing.assert_array_equal(got, ref)


def test_run_binds_ort_allocated_outputs_when_none_are_bound(mlp_session: ort.InferenceSession) -> None:
    binder = IOBinder(mlp_session)
    binder.bind_inputs((np.ones((1, 16), np.float32),))
    assert binder.run()["y"].shape == (1, 4)


def test_allocate_outputs_from_named_axes(two_session: ort.InferenceSession, monkeypatch: pytest.MonkeyPatch) -> None:
    binder = IOBinder(two_session)
    binder.bind_inputs({"x": torch.randn(6, 4), "idx": torch.arange(6)})
    # 'a' is ['batch', 4] and 'b' is [6] given explicitly: no probe run is needed.
    monkeypatch.setattr(binder, "_probe_output_shapes", lambda: pytest.fail("probed"))
    tensors = binder.allocate_outputs({"b": (6,)})
    assert tensors["a"].shape == (6, 4) and tensors["a"].dtype == torch.float32
    out = binder.run()
    assert out["a"] is tensors["a"] and out["b"] is tensors["b"]
    ref = _reference(two_session, binder.inputs)
    np.testing.assert_array_equal(tensors["b"].numpy(), ref["b"])


def test_allocate_outputs_probes_unnamed_dims(two_session: ort.InferenceSession) -> None:
    binder = IOBinder(two_session)
    feed = {"x": torch.randn(5, 4), "idx": torch.arange(5)}
    binder.bind_inputs(feed)
    tensors = binder.allocate_outputs()  # 'b' is ['Reshapeb_dim_0']: one probe run reads it
    assert {n: tuple(t.shape) for n, t in tensors.items()} == {"a": (5, 4), "b": (5,)}
    binder.run()
    ref = _reference(two_session, feed)
    np.testing.assert_array_equal(tensors["a"].numpy(), ref["a"])
    np.testing.assert_array_equal(tensors["b"].numpy(), ref["b"])


def test_resolve_output_shapes_leaves_unknown_dims_none(two_session: ort.InferenceSession) -> None:
    metas = {m.name: m for m in two_session.get_outputs()}
    assert resolve_output_shapes(metas, {"batch": 7}) == {"a": (7, 4), "b": None}


def test_device_output_conversion_dlpack_and_host_fallback(mlp_session: ort.InferenceSession,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # The path CUDA outputs take (DLPack, else a copy through the host), exercised on CPU values.
    x = torch.randn(3, 16)
    binder = IOBinder(mlp_session)
    binder.bind_inputs((x,))
    expected = binder.run()["y"]
    fetched = binder._binding.get_outputs_as_ortvaluevector()
    viewed = binder._device_output(fetched, 0)
    assert isinstance(viewed, torch.Tensor) and viewed.data_ptr() == fetched[0].data_ptr()
    np.testing.assert_array_equal(viewed.numpy(), expected)

    def no_dlpack(value: Any) -> torch.Tensor:
        raise TypeError("no __dlpack__")

    monkeypatch.setattr(torch, "from_dlpack", no_dlpack)
    with pytest.warns(UserWarning, match="no DLPack support"):
        copied = binder._device_output(fetched, 0)
    np.testing.assert_array_equal(copied.numpy(), expected)


def test_to_numpy_returns_host_arrays(mlp_session: ort.InferenceSession) -> None:
    binder = IOBinder(mlp_session)
    x = torch.randn(2, 16)
    binder.bind_inputs((x,))
    binder.bind_outputs({"y": torch.empty(2, 4)})
    out = binder.run(to_numpy=True)
    assert isinstance(out["y"], np.ndarray)
    np.testing.assert_array_equal(out["y"], _reference(mlp_session, {"x": x})["y"])


# ---- repeated runs with updated inputs --------------------------------------------------------


def test_update_inputs_copies_into_the_bound_buffers(two_path: Path, two_session: ort.InferenceSession) -> None:
    binder = bound_session(two_path, {"x": torch.zeros(4, 4), "idx": torch.zeros(4, dtype=torch.int64)})
    x_buf, out_a = binder.inputs["x"], binder.outputs["a"]
    ptrs = (x_buf.data_ptr(), out_a.data_ptr())
    rng = np.random.default_rng(0)
    for step in range(3):
        new = {"x": rng.standard_normal((4, 4), dtype=np.float32), "idx": torch.full((4,), step)}
        binder.update_inputs(new)
        out = binder.run()
        ref = _reference(two_session, new)
        np.testing.assert_array_equal(out["a"].numpy(), ref["a"])
        np.testing.assert_array_equal(out["b"].numpy(), ref["b"])
    assert (binder.inputs["x"].data_ptr(), binder.outputs["a"].data_ptr()) == ptrs
    binder.update_inputs({"idx": torch.full((4,), 100)})  # a partial update keeps the other buffers
    assert torch.equal(binder.inputs["x"], torch.from_numpy(new["x"]))
    assert binder.runs == 3


def test_update_inputs_refuses_new_shape_and_unbound_input(mlp_session: ort.InferenceSession) -> None:
    binder = IOBinder(mlp_session)
    with pytest.raises(FeedError, match=r"'x' is not bound yet.*bind_inputs"):
        binder.update_inputs({"x": torch.zeros(2, 16)})
    binder.bind_inputs((torch.zeros(2, 16),))
    with pytest.raises(FeedError, match=r"shape \(2, 16\); received shape \(3, 16\).*bind_inputs"):
        binder.update_inputs((torch.zeros(3, 16),))
    with pytest.raises(FeedError, match=r"expects tensor\(float\).*float64"):
        binder.update_inputs((np.zeros((2, 16)),))


def test_rebinding_a_new_shape_then_reallocating(mlp_session: ort.InferenceSession) -> None:
    binder = IOBinder(mlp_session)
    binder.bind_inputs((torch.randn(2, 16),))
    binder.allocate_outputs()
    binder.run()
    x = torch.randn(7, 16)
    binder.bind_inputs((x,))
    with pytest.raises(FeedError, match=r"computed output shape.*allocate_outputs\(\)"):
        binder.run()
    binder.allocate_outputs()
    np.testing.assert_array_equal(binder.run()["y"].numpy(), _reference(mlp_session, {"x": x})["y"])


# ---- feed validation --------------------------------------------------------------------------


def test_unknown_and_missing_names(two_session: ort.InferenceSession) -> None:
    binder = IOBinder(two_session)
    with pytest.raises(FeedError, match=r"Unknown input name\(s\) \['X'\]; the model's inputs are \['x', 'idx'\]"):
        binder.bind_inputs({"X": torch.zeros(1, 4)})
    binder.bind_inputs({"x": torch.zeros(1, 4)})
    with pytest.raises(FeedError, match=r"Inputs \['idx'\] are not bound"):
        binder.run()
    with pytest.raises(FeedError, match=r"Received 1 input\(s\) for the model's 2 inputs \['x', 'idx'\]"):
        binder.bind_inputs((torch.zeros(1, 4),))
    with pytest.raises(FeedError, match=r"Unknown output name\(s\) \['c'\]"):
        binder.bind_outputs({"c": torch.zeros(1)})
    with pytest.raises(FeedError, match=r"must be a numpy array or a torch tensor, received list"):
        binder.bind_inputs({"x": [[1.0, 2.0, 3.0, 4.0]]})


def test_wrong_dtype_names_expected_and_received(two_session: ort.InferenceSession) -> None:
    binder = IOBinder(two_session)
    expected = r"input 'x' expects tensor\(float\) \(torch.float32.*received Tensor.*int64.*\.to\(torch.float32\)"
    with pytest.raises(FeedError, match=expected):
        binder.bind_inputs({"x": torch.zeros(2, 4, dtype=torch.int64), "idx": torch.zeros(2, dtype=torch.int64)})
    with pytest.raises(FeedError, match=r"input 'idx' expects tensor\(int64\).*int32"):
        binder.bind_inputs({"x": np.zeros((2, 4), np.float32), "idx": np.zeros(2, np.int32)})
    with pytest.raises(FeedError, match=r"expects tensor\(float\).*bfloat16"):
        binder.bind_inputs({"x": torch.zeros(2, 4, dtype=torch.bfloat16)})
    with pytest.raises(FeedError, match=r"output 'a' expects tensor\(float\).*float64"):
        binder.bind_outputs({"a": torch.zeros(2, 4, dtype=torch.float64)})


def test_wrong_rank_and_fixed_dim(two_session: ort.InferenceSession) -> None:
    binder = IOBinder(two_session)
    with pytest.raises(FeedError, match=r"input 'x' expects rank 2 \(dims \['batch', 4\]\), received shape \(2, 4, 1\)"):
        binder.bind_inputs({"x": torch.zeros(2, 4, 1)})
    with pytest.raises(FeedError, match=r"axis 1 is fixed at 4 in the model, received shape \(2, 5\)"):
        binder.bind_inputs({"x": torch.zeros(2, 5)})
    with pytest.raises(FeedError, match=r"output 'a' expects rank 2"):
        binder.bind_outputs({"a": torch.zeros(8)})


def test_inputs_sharing_an_axis_must_agree(two_session: ort.InferenceSession) -> None:
    binder = IOBinder(two_session)
    with pytest.raises(FeedError, match=r"Axis 'batch' is 3 in input 'x' but 2 in input 'idx'"):
        binder.bind_inputs({"x": torch.zeros(3, 4), "idx": torch.zeros(2, dtype=torch.int64)})
    binder.bind_inputs({"x": torch.zeros(3, 4), "idx": torch.zeros(3, dtype=torch.int64)})
    with pytest.raises(FeedError, match=r"Axis 'batch' is 3 in input 'x' but 5 in input 'idx'"):
        binder.bind_inputs({"idx": torch.zeros(5, dtype=torch.int64)})  # checked against the bound 'x'


def test_non_contiguous_tensors_are_refused(mlp_session: ort.InferenceSession) -> None:
    binder = IOBinder(mlp_session)
    with pytest.raises(FeedError, match=r"input 'x' is not contiguous.*tensor\.contiguous\(\)"):
        binder.bind_inputs((torch.randn(16, 3).t(),))
    with pytest.raises(FeedError, match=r"not contiguous.*np\.ascontiguousarray"):
        binder.bind_inputs((np.zeros((3, 32), np.float32)[:, ::2],))
    binder.bind_inputs((torch.randn(16, 3).t().contiguous(),))  # the fix works
    with pytest.raises(FeedError, match=r"output 'y' is not contiguous"):
        binder.bind_outputs({"y": torch.empty(4, 3).t()})


def test_read_only_numpy_output_is_refused(mlp_session: ort.InferenceSession) -> None:
    y = np.zeros((3, 4), np.float32)
    y.setflags(write=False)
    with pytest.raises(FeedError, match=r"output 'y' is a read-only array"):
        IOBinder(mlp_session).bind_outputs({"y": y})


# ---- devices, sessions, CUDA without CUDA -----------------------------------------------------


def test_parse_device() -> None:
    assert parse_device("cpu") == Device("cpu", 0)
    assert parse_device("cuda:1") == Device("cuda", 1)
    assert str(parse_device(torch.device("cuda", 2))) == "cuda:2"
    with pytest.raises(InvalidInputError, match=r"'cpu' or 'cuda:N', received 'mps'"):
        parse_device("mps")
    with pytest.raises(InvalidInputError, match=r"received 'gpu0'"):
        parse_device("gpu0")


def test_not_a_session_is_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"needs an onnxruntime.InferenceSession, received str"):
        IOBinder("model.onnx")  # type: ignore[arg-type]


@requires_no_cuda
def test_cuda_without_cuda_says_how_to_install(mlp_session: ort.InferenceSession, mlp_path: Path) -> None:
    with pytest.raises(ProviderError, match=r"'cuda:0' asked, but CUDA is not available.*onnxruntime-gpu"):
        IOBinder(mlp_session, "cuda")
    with pytest.raises(ProviderError, match=r"CUDA is not available.*onnxruntime-gpu"):
        bound_session(mlp_path, (torch.zeros(1, 16),), device="cuda:0")
    with pytest.raises(ProviderError, match=r"CUDA is not available.*device='cpu'"):
        cuda_graph_session(mlp_path, (torch.zeros(1, 16),))
    with pytest.raises(ProviderError, match=r"CUDA graphs need device='cuda:N'"):
        bound_session(mlp_path, (torch.zeros(1, 16),), device="cpu", cuda_graph=True)


def test_session_config_for_cuda_graph() -> None:
    base = SessionConfig(provider_options={"CUDAExecutionProvider": {"arena_extend_strategy": "kSameAsRequested"}})
    config = session_config_for(Device("cuda", 1), base, cuda_graph=True)
    assert config.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert config.provider_options["CUDAExecutionProvider"] == {
        "arena_extend_strategy": "kSameAsRequested", "device_id": "1", "enable_cuda_graph": "1"}
    assert session_config_for(Device("cpu"), base) is base


def test_graph_capture_detection_reads_provider_options(mlp_session: ort.InferenceSession) -> None:
    class Stub:
        def get_provider_options(self) -> dict[str, dict[str, str]]:
            return {"CUDAExecutionProvider": {"enable_cuda_graph": "1"}}

    assert graph_capture_enabled(Stub()) is True  # type: ignore[arg-type]
    assert graph_capture_enabled(mlp_session) is False


def test_graph_mode_bookkeeping_simulated_on_cpu(mlp_session: ort.InferenceSession) -> None:
    # The capture rules without a GPU: the first run "captures", after it only update_inputs may feed.
    x, y = torch.randn(2, 16), torch.empty(2, 4)
    binder = IOBinder(mlp_session)
    binder.bind_inputs((x,))
    binder.bind_outputs({"y": y})
    binder.cuda_graph = True
    with pytest.raises(FeedError, match=r"input 'x' is in host memory, but CUDA graphs replay fixed device"):
        binder.bind_inputs((x,))
    with pytest.raises(InvalidInputError, match=r"outputs \['y'\] have no buffer.*allocate_outputs"):
        binder.bind_outputs(None)
    binder.run()
    assert binder._run_options[0].get_run_config_entry("gpu_graph_id") == "0"
    with pytest.raises(InvalidInputError, match=r"bind_inputs: the CUDA graph was captured.*update_inputs"):
        binder.bind_inputs((x,))
    with pytest.raises(InvalidInputError, match=r"allocate_outputs: the CUDA graph was captured"):
        binder.allocate_outputs()
    with pytest.raises(FeedError, match=r"replays fixed shapes"):
        binder.update_inputs((torch.zeros(3, 16),))
    new = torch.randn(2, 16)
    binder.update_inputs((new,))
    binder.run()
    np.testing.assert_array_equal(y.numpy(), _reference(mlp_session, {"x": new})["y"])


def test_bound_session_on_cpu_binds_without_copies(two_path: Path) -> None:
    x, idx = torch.randn(2, 4), torch.arange(2)
    binder = bound_session(two_path, (x, idx), preallocate=False)
    assert binder.inputs["x"] is x and binder.inputs["idx"] is idx
    x.fill_(1.0)
    out = binder.run()
    np.testing.assert_array_equal(out["a"], np.full((2, 4), 2.0, np.float32))


def test_repr_and_html_show_the_bindings(mlp_session: ort.InferenceSession) -> None:
    binder = IOBinder(mlp_session)
    binder.bind_inputs((torch.zeros(2, 16),))
    binder.bind_outputs(None)
    assert repr(binder) == "IOBinder(device='cpu', inputs=['x'], outputs=['y'], runs=0)"
    assert "dynamic" in str(binder) and "torch.float32" in str(binder)
    assert "<table" in binder._repr_html_() and "ort" in binder._repr_html_()
    assert binder.bindings()[0] == BoundTensor("x", "input", "torch", "cpu", "torch.float32", (2, 16),
                                               binder.inputs["x"].data_ptr())


# ---- CUDA (skipped without a GPU) -------------------------------------------------------------


@pytest.mark.gpu
@requires_cuda
def test_cuda_torch_input_zero_copy_and_device_outputs(mlp_path: Path) -> None:
    x = torch.randn(3, 16, device="cuda")
    binder = bound_session(mlp_path, (x,), device="cuda:0")
    assert binder.inputs["x"] is x
    y = binder.run()["y"]
    assert y.is_cuda and y is binder.outputs["y"]
    x.mul_(2.0)
    binder.run()
    ref = _reference(open_session(mlp_path), {"x": x})["y"]
    np.testing.assert_allclose(y.cpu().numpy(), ref, rtol=1e-3, atol=1e-3)
    free = bound_session(mlp_path, (x,), device="cuda:0", preallocate=False).run()["y"]
    assert free.is_cuda
    np.testing.assert_allclose(free.cpu().numpy(), ref, rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
@requires_cuda
def test_cuda_graph_replays_with_updated_inputs(mlp_path: Path) -> None:
    cpu = open_session(mlp_path)
    binder = cuda_graph_session(mlp_path, (torch.zeros(4, 16),))
    assert binder.cuda_graph and binder.inputs["x"].is_cuda
    for step in range(4):
        new = torch.randn(4, 16, generator=torch.Generator().manual_seed(step))
        binder.update_inputs((new,))
        out = binder.run()["y"]
        np.testing.assert_allclose(out.cpu().numpy(), _reference(cpu, {"x": new})["y"], rtol=1e-3, atol=1e-3)
    with pytest.raises(InvalidInputError, match=r"CUDA graph was captured.*update_inputs"):
        binder.bind_inputs((torch.zeros(4, 16, device="cuda"),))
    with pytest.raises(FeedError, match=r"replays fixed shapes"):
        binder.update_inputs((torch.zeros(2, 16),))


# What ONNX Runtime 1.32 said on an H200 (benchmarks/gpu/results/gpu_chapter.json, item7_cuda_graph_rules).
_MEMCPY = ("[ONNXRuntimeError] : 1 : FAIL : This session cannot use the graph capture feature as requested by the "
           "user  as all compute graph nodes have not been partitioned to the CUDAExecutionProvider")
_CONTROL = ("[ONNXRuntimeError] : 1 : FAIL : This session cannot use the graph capture feature as requested by the "
            "user as the model has control flow nodes which can't be supported by CUDAExecutionProvider")


def test_cuda_graph_refusals_say_what_ort_refuses():
    from workbench.core._binding_checks import cuda_graph_refusal
    from workbench.errors import ProviderError

    memcpy = cuda_graph_refusal(RuntimeError(_MEMCPY))
    assert isinstance(memcpy, ProviderError) and "Memcpy" in str(memcpy)
    assert "Shape subgraphs on the CPU without Memcpy are allowed" in str(memcpy)
    assert "shape computations" not in str(memcpy)  # the old, wrong reason
    control = cuda_graph_refusal(RuntimeError(_CONTROL))
    assert "control flow (If/Loop/Scan)" in str(control) and "Memcpy" not in str(control)
    assert cuda_graph_refusal(RuntimeError("CUDA out of memory")) is None
