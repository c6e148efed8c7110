using System.Globalization;
using ILGPU;
using ILGPU.Runtime;
using Raft.Cuda;
using Raft.Kernels;
using Raft.Tests.Shared;
using CudaDevice = Raft.Cuda.CudaDevice;

namespace Raft.GpuBench;

/// <summary>The errors of one implementation against <see cref="ReferenceKernels"/> (the spec).</summary>
/// <param name="Implementation">Who was checked.</param>
/// <param name="IndexMismatches">Top-K positions whose index differs from the reference's and whose logit differs too (ties are allowed).</param>
/// <param name="ProbError">Top-K probabilities: max|Δ| / max|ref|.</param>
/// <param name="LossError">Forward-KL loss: the largest relative error (per row where known, else of the mean).</param>
/// <param name="GradError">In-place gradient: max|Δ| / max|ref|.</param>
/// <param name="Error">Why the check could not run (then the numbers are NaN).</param>
internal sealed record CheckResult(string Implementation, int IndexMismatches, double ProbError, double LossError, double GradError, string? Error = null)
{
    public bool Passed(double tolerance) =>
        Error is null && IndexMismatches == 0 && ProbError <= tolerance && LossError <= tolerance && GradError <= tolerance;

    public string Format(double tolerance) => Error is not null
        ? $"| {Implementation} | — | — | — | — | ERROR: {Error.Replace('\n', ' ')} |"
        : string.Create(CultureInfo.InvariantCulture,
            $"| {Implementation} | {IndexMismatches} | {ProbError:E2} | {LossError:E2} | {GradError:E2} | {(Passed(tolerance) ? "PASS" : "FAIL")} |");

    public const string Header = "| implementation | top-K index mismatches | top-K prob err | loss err | grad err | verdict |\n| --- | ---: | ---: | ---: | ---: | --- |";
}

/// <summary>
/// Correctness first: fresh random teacher and student rows at the benchmark's V and K (a subset of rows), the
/// reference's top-K softmax and in-place forward-KL gradient, and each implementation's errors against them.
/// The distillation is fed the reference's teacher top-K, so that a top-K error does not hide in it.
/// </summary>
internal sealed class CorrectnessCheck
{
    private readonly BenchOptions _o;
    private readonly int _rows;
    private readonly float[] _teacher, _student;
    private readonly int[] _refIdx;
    private readonly float[] _refProbs, _refGrad;
    private readonly double[] _refRowLoss;
    private readonly double _refLoss;

    public CorrectnessCheck(BenchOptions o)
    {
        _o = o;
        _rows = o.CheckRows;
        int v = o.Vocab, k = o.TopK;
        _teacher = Gauss.SplitMix64((long)_rows * v, 3.0, o.Seed);
        _student = Gauss.SplitMix64((long)_rows * v, 3.0, o.Seed ^ 0x5DEECE66Dul);
        _refIdx = new int[_rows * k];
        _refProbs = new float[_rows * k];
        ReferenceKernels.Instance.TopKSoftmax(_teacher, _rows, v, k, o.Temperature, _refIdx, _refProbs);
        _refGrad = new float[_student.Length];
        _refLoss = ReferenceKernels.Instance.Distill(_student, _rows, v, _refIdx, _refProbs, Config, default, _refGrad, _rows).Loss;
        _refRowLoss = new double[_rows];
        var s = new double[v];
        var g = new double[v];
        var p = new double[k];
        for (int r = 0; r < _rows; r++)
        {
            for (int i = 0; i < v; i++) s[i] = _student[(long)r * v + i];
            for (int j = 0; j < k; j++) p[j] = _refProbs[r * k + j];
            _refRowLoss[r] = ReferenceKernels.DistillRow(s, _refIdx.AsSpan(r * k, k), p, Config, g);
        }
    }

    private DistillSettings Config => new(_o.TopK, _o.Temperature, DistillLossKind.ForwardKL);

    /// <summary>An <see cref="ILossKernels"/> implementation through its span overloads (gradient in place).</summary>
    public CheckResult Check(ILossKernels kernels, string name)
    {
        try
        {
            int v = _o.Vocab, k = _o.TopK;
            var idx = new int[_rows * k];
            var probs = new float[_rows * k];
            kernels.TopKSoftmax(_teacher, _rows, v, k, _o.Temperature, idx, probs);
            var work = (float[])_student.Clone();
            var loss = kernels.Distill(work, _rows, v, _refIdx, _refProbs, Config, default, work, _rows).Loss;
            return new CheckResult(name, IndexMismatches(idx), NormError(probs, _refProbs), Math.Abs(loss - _refLoss) / Math.Abs(_refLoss), NormError(work, _refGrad));
        }
        catch (Exception e)
        {
            return new CheckResult(name, 0, double.NaN, double.NaN, double.NaN, $"{e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>The CUDA C kernels (<see cref="CudaLossKernels"/>) on device buffers, gradient in place, per-row losses.</summary>
    public CheckResult Check(CudaDevice device, CudaLossKernels kernels)
    {
        const string name = "raft cuda-c";
        try
        {
            int v = _o.Vocab, k = _o.TopK;
            using var dTeacher = device.Upload<float>(_teacher);
            using var dIdx = device.Allocate<int>(_rows * k);
            using var dProbs = device.Allocate<float>(_rows * k);
            using var dStatus = device.Allocate<int>(_rows);
            using var dStudent = device.Upload<float>(_student);
            using var dRefIdx = device.Upload<int>(_refIdx);
            using var dRefProbs = device.Upload<float>(_refProbs);
            using var dLoss = device.Allocate<float>(_rows);
            using var dStatus2 = device.Allocate<int>(_rows);
            // poison the outputs, so that an unwritten element shows
            Poison(dIdx, -1);
            Poison(dProbs, float.NaN);
            Poison(dLoss, float.NaN);
            kernels.TopKSoftmax(dTeacher.Pointer, _rows, v, k, _o.Temperature, dIdx.Pointer, dProbs.Pointer, dStatus.Pointer);
            kernels.Distill(dStudent.Pointer, dStudent.Pointer, _rows, v, dRefIdx.Pointer, dRefProbs.Pointer, k, DevicePointer.Null,
                _rows, _o.Temperature, KdDivergence.ForwardKL, 0.5f, dLoss.Pointer, dStatus2.Pointer);
            device.Synchronize();
            if (dStatus.ToArray().Any(s => s != 0) || dStatus2.ToArray().Any(s => s != 0))
                return new CheckResult(name, 0, double.NaN, double.NaN, double.NaN, "a row status flag is set on finite inputs");
            var rowLoss = dLoss.ToArray();
            double lossErr = 0;
            for (int r = 0; r < _rows; r++)
                lossErr = Math.Max(lossErr, double.IsFinite(rowLoss[r]) ? Math.Abs(rowLoss[r] - _refRowLoss[r]) / Math.Abs(_refRowLoss[r]) : double.PositiveInfinity);
            return new CheckResult(name, IndexMismatches(dIdx.ToArray()), NormError(dProbs.ToArray(), _refProbs), lossErr, NormError(dStudent.ToArray(), _refGrad));
        }
        catch (Exception e) when (e is CudaException or NvrtcException or ArgumentException or InvalidOperationException)
        {
            return new CheckResult(name, 0, double.NaN, double.NaN, double.NaN, $"{e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>
    /// The zero-copy path: the CUDA C kernels on ILGPU-allocated buffers through their ArrayView overloads, on
    /// ILGPU's default stream (the kernels must be loaded on <see cref="CudaDevice.FromIlgpu"/>).
    /// </summary>
    public CheckResult CheckOnIlgpuBuffers(CudaLossKernels kernels)
    {
        const string name = CudaBench.IlgpuBuffersImplementation;
        try
        {
            var accelerator = kernels.Device.IlgpuAccelerator ?? throw new InvalidOperationException("the kernels are not loaded on ILGPU's context");
            int v = _o.Vocab, k = _o.TopK;
            using var dTeacher = accelerator.Allocate1D(_teacher);
            using var dIdx = accelerator.Allocate1D<int>(_rows * k);
            using var dProbs = accelerator.Allocate1D<float>(_rows * k);
            using var dStatus = accelerator.Allocate1D<int>(_rows);
            using var dStudent = accelerator.Allocate1D(_student);
            using var dRefIdx = accelerator.Allocate1D(_refIdx);
            using var dRefProbs = accelerator.Allocate1D(_refProbs);
            using var dLoss = accelerator.Allocate1D<float>(_rows);
            using var dStatus2 = accelerator.Allocate1D<int>(_rows);
            // poison the outputs (all bits set: index −1, NaN), so that an unwritten element shows
            var stream = accelerator.DefaultStream;
            dIdx.View.MemSet(stream, 0xff);
            dProbs.View.MemSet(stream, 0xff);
            dLoss.View.MemSet(stream, 0xff);
            kernels.TopKSoftmax(dTeacher.View, _rows, v, k, _o.Temperature, dIdx.View, dProbs.View, dStatus.View, stream);
            kernels.Distill(dStudent.View, dStudent.View, _rows, v, dRefIdx.View, dRefProbs.View, k, ArrayView<float>.Empty,
                _rows, _o.Temperature, KdDivergence.ForwardKL, 0.5f, dLoss.View, dStatus2.View, stream);
            stream.Synchronize();
            if (dStatus.GetAsArray1D().Any(s => s != 0) || dStatus2.GetAsArray1D().Any(s => s != 0))
                return new CheckResult(name, 0, double.NaN, double.NaN, double.NaN, "a row status flag is set on finite inputs");
            var rowLoss = dLoss.GetAsArray1D();
            double lossErr = 0;
            for (int r = 0; r < _rows; r++)
                lossErr = Math.Max(lossErr, double.IsFinite(rowLoss[r]) ? Math.Abs(rowLoss[r] - _refRowLoss[r]) / Math.Abs(_refRowLoss[r]) : double.PositiveInfinity);
            return new CheckResult(name, IndexMismatches(dIdx.GetAsArray1D()), NormError(dProbs.GetAsArray1D(), _refProbs), lossErr, NormError(dStudent.GetAsArray1D(), _refGrad));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return new CheckResult(name, 0, double.NaN, double.NaN, double.NaN, $"{e.GetType().Name}: {e.Message}");
        }
    }

    private static void Poison<T>(DeviceBuffer<T> buffer, T value) where T : unmanaged
    {
        var host = new T[buffer.Length];
        Array.Fill(host, value);
        buffer.CopyFrom(host);
    }

    /// <summary>Positions where the index differs from the reference's and the teacher logits there differ too.</summary>
    private int IndexMismatches(int[] idx)
    {
        int v = _o.Vocab, k = _o.TopK, bad = 0;
        for (int i = 0; i < idx.Length; i++)
        {
            if (idx[i] == _refIdx[i]) continue;
            long row = i / k;
            if ((uint)idx[i] >= (uint)v || _teacher[row * v + idx[i]] != _teacher[row * v + _refIdx[i]]) bad++;
        }
        return bad;
    }

    /// <summary>max|a − ref| / max|ref|; NaN anywhere gives +∞.</summary>
    private static double NormError(float[] a, float[] reference)
    {
        double maxDiff = 0, maxRef = 0;
        for (long i = 0; i < a.Length; i++)
        {
            double d = Math.Abs((double)a[i] - reference[i]);
            if (!double.IsFinite(d)) return double.PositiveInfinity;
            maxDiff = Math.Max(maxDiff, d);
            maxRef = Math.Max(maxRef, Math.Abs((double)reference[i]));
        }
        return maxRef == 0 ? maxDiff : maxDiff / maxRef;
    }
}
