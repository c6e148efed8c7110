using ILGPU;
using ILGPU.Runtime;
using Raft.Gpu;
using Raft.Kernels;
using Raft.Model;

namespace Raft.Pipeline.Training;

/// <summary>
/// The student on an ILGPU accelerator (<see cref="GpuLlamaModel"/>): weights, gradients, AdamW moments and activations
/// stay on the device across steps, and so do the logits: the losses run on them in place through the device overloads
/// of <see cref="IDeviceLossKernels"/> on the same accelerator (the run's kernels when they run there — ILGPU's or the
/// CUDA C ones — else <see cref="IlgpuKernels"/> opened on it), the weighting and the backward read them there. Only the batch's ids, targets and teacher
/// top-K go up, and the loss scalars and the norm come back. The updated weights are copied back to the host model only
/// when it is needed (rollouts, callbacks, checkpoints, the end of the run). One process for now.
/// <para>With LoRA (<see cref="LlamaModel.Lora"/>) the device trains the adapters only: the base is uploaded once and
/// stays frozen there (and on the host, where the rollouts and the base-as-teacher read it), and the trained adapters,
/// not the base, are what comes back to the host model's <see cref="LoraAdapters.Parameters"/>. A base the host holds in
/// bf16/fp16 (<see cref="LlamaModel.IsInferenceOnly"/>) is widened to fp32 for the device (exact; the device memory is
/// that of an fp32 base).</para>
/// </summary>
internal sealed class GpuStudent : IStudentBackend
{
    private readonly StudentSetup _setup;
    private readonly GpuLlamaModel _gpu;
    private readonly IDeviceLossKernels _kernels;
    private readonly IlgpuKernels? _ownKernels;
    private readonly DeviceBatchBuffers _buffers;
    private bool _hostStale;

    public GpuStudent(StudentSetup setup)
    {
        var accelerator = setup.Accelerator!;
        _setup = setup;
        var optimizer = setup.HostOptimizer(); // the resumed step and moments, or fresh ones
        _gpu = setup.Model is { IsInferenceOnly: true, Lora: { } lora }
            ? new GpuLlamaModel(accelerator, setup.Model.Config, WidenedBase(setup.Model), lora)
            : new GpuLlamaModel(accelerator, setup.Model);
        try
        {
            _gpu.SetOptimizer(setup.Adam, setup.Schedule, optimizer.StepCount);
            if (setup.Frozen is not null) _gpu.SetTrainable(setup.IsTrainable);
            if (optimizer.StepCount > 0) _gpu.UploadOptimizerState(optimizer.FirstMoment, optimizer.SecondMoment);
            if (setup.Kernels is IDeviceLossKernels k && ReferenceEquals(k.Accelerator, accelerator)) _kernels = k;
            else _kernels = _ownKernels = new IlgpuKernels(accelerator);
            _buffers = new DeviceBatchBuffers(accelerator);
        }
        catch
        {
            _gpu.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A LoRA base held in 16 bits on the host, as the fp32 tensors the device computes on: the fp32 tensors as they
    /// are, every 16-bit matrix widened (exactly, so the device's base is the host's, value for value). Transient: the
    /// copy is uploaded and dropped; the host model keeps its 16-bit matrices.
    /// </summary>
    private static TensorSet WidenedBase(LlamaModel model)
    {
        var set = new TensorSet();
        foreach (var t in model.Parameters.Tensors) set.Add(t);
        foreach (var h in model.HalfMatrices.Values) set.Add(h.ToSingle());
        return set;
    }

    public double CurrentLearningRate => _gpu.CurrentLearningRate;

    public string Describe() => $", student on {_setup.Accelerator!.Name} (ILGPU)";

    public StepLosses ForwardAndLoss(PackedBatch batch, StepLoss loss, float kdNormalizer, float ceNormalizer)
    {
        _gpu.Forward(batch.Inputs, batch.Sequences, batch.SeqLen);
        return loss.Compute(_kernels, batch, _gpu.Logits, _gpu.Config.VocabSize, kdNormalizer, ceNormalizer, _buffers);
    }

    public void Weigh(PackedBatch batch, double wKd, double wSft)
    {
        long v = _gpu.Config.VocabSize, kd = batch.KdRows * v;
        var logits = _gpu.Logits;
        if (kd > 0) _gpu.Scale(logits.SubView(0, kd), (float)wKd);
        _gpu.Scale(logits.SubView(kd, batch.SftRows * v), (float)wSft);
    }

    // StudentBackends refuses gradient_accumulation_steps > 1 on the GPU: a step is one micro-batch.
    public void AccumulateBackward() => throw new NotSupportedException("the GPU student does not accumulate micro-batches.");

    public void DiscardGradients() { } // the next BackwardAndUpdate zeroes them

    public (double Norm, bool Applied) BackwardAndUpdate(double clipNorm)
    {
        // backward, clipping and AdamW on the device (a non-finite norm leaves weights and moments untouched)
        _gpu.ZeroGradients();
        _gpu.Backward(_gpu.Logits);
        var r = _gpu.ClipAndUpdate(clipNorm);
        if (r.Applied) _hostStale = true;
        return (r.GradNorm, r.Applied && double.IsFinite(r.GradNorm));
    }

    public void SyncHostWeights()
    {
        if (!_hostStale) return;
        if (_setup.Model.Lora is { } lora) _gpu.DownloadAdapters(lora.Parameters);   // the base never changes
        else _gpu.Download(_setup.Model.Parameters);
        _hostStale = false;
    }

    /// <summary>The device optimizer as a host AdamW (its moments copied back); the weights are synced by the caller.</summary>
    public AdamW? CheckpointOptimizer()
    {
        var snapshot = AdamW.AtStep(_setup.Model.Lora?.Parameters ?? _setup.Model.Parameters, _setup.Adam, _setup.Schedule, _gpu.OptimizerStep);
        _gpu.DownloadOptimizerState(snapshot.FirstMoment, snapshot.SecondMoment);
        return snapshot;
    }

    public void Dispose()
    {
        _buffers.Dispose();
        _ownKernels?.Dispose();
        _gpu.Dispose();
    }
}

/// <summary>Device copies of a batch's targets and teacher top-K, in buffers that grow as needed and are reused.</summary>
internal sealed class DeviceBatchBuffers(Accelerator accelerator) : IDisposable
{
    private MemoryBuffer1D<int, Stride1D.Dense>? _targets, _indices;
    private MemoryBuffer1D<float, Stride1D.Dense>? _probs, _weights;

    public ArrayView<int> UploadTargets(PackedBatch b) => Upload(ref _targets, b.Targets);

    public (ArrayView<int> Indices, ArrayView<float> Probs, ArrayView<float> Weights) UploadTeacher(PackedBatch b) =>
        (Upload(ref _indices, b.TeacherIndices), Upload(ref _probs, b.TeacherProbs), Upload(ref _weights, b.RowWeights));

    private ArrayView<T> Upload<T>(ref MemoryBuffer1D<T, Stride1D.Dense>? buffer, T[] data) where T : unmanaged
    {
        if (buffer is null || buffer.Length < data.Length)
        {
            buffer?.Dispose();
            buffer = accelerator.Allocate1D<T>(Math.Max(1, data.Length));
        }
        var view = buffer.View.SubView(0, data.Length);
        view.CopyFromCPU(data);
        return view.AsContiguous();
    }

    public void Dispose()
    {
        _targets?.Dispose(); _indices?.Dispose(); _probs?.Dispose(); _weights?.Dispose();
    }
}
