using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using Raft.Kernels;
using static Raft.Cuda.Tests.LossKernelGpuTests; // ToDivergence, AssertClose

namespace Raft.Cuda.Tests;

/// <summary>
/// ILGPU's CUDA accelerator owning the context, and the CUDA C kernels loaded into it (<see cref="CudaDevice.FromIlgpu"/>),
/// opened on first use. ILGPU's accelerator needs no libdevice for allocations, copies and streams.
/// </summary>
public sealed class IlgpuGpuFixture : IDisposable
{
    private readonly Lazy<(Context Context, CudaAccelerator Accelerator, CudaDevice Device, CudaLossKernels Kernels)> _state;

    public IlgpuGpuFixture()
    {
        CacheDirectory = Path.Combine(Path.GetTempPath(), "raft-cuda-ilgpu-tests-" + Guid.NewGuid().ToString("N"));
        _state = new(() =>
        {
            var context = Context.Create(b => b.Cuda());
            var accelerator = context.CreateCudaAccelerator(0);
            var device = CudaDevice.FromIlgpu(accelerator);
            return (context, accelerator, device, CudaLossKernels.Load(device, new PtxCache(CacheDirectory)));
        });
    }

    public string CacheDirectory { get; }
    /// <summary>
    /// The accelerator, with its context made current on the calling thread first: test classes run in parallel on
    /// shared threads, and another class may have left the primary context current there while ILGPU still believes
    /// its accelerator bound (ILGPU's allocations and copies would then use the wrong context).
    /// </summary>
    public CudaAccelerator Accelerator
    {
        get
        {
            _state.Value.Device.MakeCurrent();
            return _state.Value.Accelerator;
        }
    }
    public CudaDevice Device => _state.Value.Device;
    public CudaLossKernels Kernels => _state.Value.Kernels;

    public void Dispose()
    {
        if (_state.IsValueCreated)
        {
            var (context, accelerator, device, kernels) = _state.Value;
            kernels.Dispose();
            device.Dispose();
            accelerator.Dispose();
            context.Dispose();
        }
        if (Directory.Exists(CacheDirectory)) Directory.Delete(CacheDirectory, recursive: true);
    }
}

/// <summary>
/// The zero-copy path: the CUDA C kernels launched on ILGPU-allocated buffers and an ILGPU stream in ILGPU's own
/// context, against the double-precision reference on fresh random inputs; the context checks; a real driver error.
/// </summary>
public class IlgpuInteropTests(IlgpuGpuFixture ilgpu, GpuFixture gpu) : IClassFixture<IlgpuGpuFixture>, IClassFixture<GpuFixture>
{
    [Fact]
    public void ViewsOfANonCudaAcceleratorAreRefused()
    {
        // runs without a GPU: ILGPU's CPU accelerator
        using var context = Context.Create(b => b.CPU());
        using var cpu = context.CreateCPUAccelerator(0);
        using var buffer = cpu.Allocate1D<float>(8);
        var e = Assert.Throws<ArgumentException>(() => IlgpuInterop.PointerOf(buffer.View, name: "logits"));
        Assert.Contains("logits", e.Message);
        Assert.Contains("not on a CUDA accelerator", e.Message);
        Assert.True(IlgpuInterop.PointerOf(ArrayView<float>.Empty).IsNull);
    }

    [GpuTheory]
    [InlineData(5, 1003, 17, 1.5f, DistillLossKind.ForwardKL, true)]
    [InlineData(3, 32000, 64, 2.0f, DistillLossKind.ReverseKL, false)]
    [InlineData(4, 4099, 100, 1.0f, DistillLossKind.Jsd, true)]
    public void KernelsOnIlgpuBuffersAndStreamMatchTheReference(int rows, int vocab, int k, float tau, DistillLossKind kind, bool inPlace)
    {
        var rng = TestRandom.Fresh();
        var accelerator = ilgpu.Accelerator;
        var teacher = rng.Normals(rows * vocab, 3.0);
        var student = rng.Normals(rows * vocab, 2.0);
        var weights = Enumerable.Range(0, rows).Select(r => r == 1 ? 0f : 0.5f + r).ToArray();
        var config = new DistillSettings(k, tau, kind, 0.3f);
        var expectedIdx = new int[rows * k];
        var expectedP = new float[rows * k];
        ReferenceKernels.Instance.TopKSoftmax(teacher, rows, vocab, k, tau, expectedIdx, expectedP);
        var expectedGrad = new float[rows * vocab];
        var expected = ReferenceKernels.Instance.Distill(student, rows, vocab, expectedIdx, expectedP, config, weights, expectedGrad);

        using var stream = accelerator.CreateStream();
        // a view inside a longer buffer (offset 3): the kernels get the view's own address
        using var logitsBuffer = accelerator.Allocate1D<float>(rows * vocab + 7);
        var dTeacher = logitsBuffer.View.SubView(3, rows * vocab);
        using var dStudent = accelerator.Allocate1D<float>(rows * vocab);
        using var dGrad = accelerator.Allocate1D<float>(inPlace ? 0 : rows * vocab);
        using var dIdx = accelerator.Allocate1D<int>(rows * k);
        using var dP = accelerator.Allocate1D<float>(rows * k);
        using var dW = accelerator.Allocate1D<float>(rows);
        using var dLoss = accelerator.Allocate1D<float>(rows);
        using var dStatus = accelerator.Allocate1D<int>(rows);
        dTeacher.CopyFromCPU(stream, teacher);
        dStudent.View.CopyFromCPU(stream, student);
        dW.View.CopyFromCPU(stream, weights);
        dIdx.View.MemSet(stream, 0xff); // poisoned: an unwritten element fails
        dP.View.MemSet(stream, 0xff);

        ilgpu.Kernels.TopKSoftmax(dTeacher, rows, vocab, k, tau, dIdx.View, dP.View, dStatus.View, stream);
        ilgpu.Kernels.Distill(dStudent.View, inPlace ? dStudent.View : dGrad.View, rows, vocab, dIdx.View, dP.View, k, dW.View,
            (float)weights.Sum(w => (double)w), tau, ToDivergence(config.EffectiveKind), config.Beta, dLoss.View, dStatus.View, stream);
        stream.Synchronize();

        Assert.All(dStatus.GetAsArray1D(), s => Assert.Equal(0, s));
        var idx = dIdx.GetAsArray1D();
        var p = dP.GetAsArray1D();
        for (int i = 0; i < idx.Length; i++)
        {
            if (idx[i] != expectedIdx[i]) Assert.Fail($"index [{i / k}, {i % k}]: got {idx[i]}, expected {expectedIdx[i]} ({rng})");
            AssertClose(expectedP[i], p[i], 1e-5, 1e-7, $"prob [{i / k}, {i % k}] ({rng})");
        }
        var rowLoss = dLoss.GetAsArray1D();
        double loss = 0;
        for (int r = 0; r < rows; r++) loss += weights[r] * (double)rowLoss[r];
        AssertClose(expected.Loss, loss / weights.Sum(w => (double)w), 1e-4, 1e-5, $"loss ({rng})");
        var grad = inPlace ? dStudent.GetAsArray1D() : dGrad.GetAsArray1D();
        double tolerance = 1e-4 * expectedGrad.Max(v => Math.Abs((double)v)) + 1e-9;
        for (int i = 0; i < grad.Length; i++)
            if (Math.Abs(grad[i] - expectedGrad[i]) > tolerance)
                Assert.Fail($"gradient [{i / vocab}, {i % vocab}]: got {grad[i]}, expected {expectedGrad[i]} (tolerance {tolerance:g3}, {rng})");
    }

    [GpuFact]
    public void CopyAndEventsRunOnTheIlgpuStream()
    {
        var rng = TestRandom.Fresh();
        var accelerator = ilgpu.Accelerator;
        var data = rng.Normals((1 << 20) + 5, 1.0);
        using var stream = accelerator.CreateStream();
        using var src = accelerator.Allocate1D(data);
        using var dst = accelerator.Allocate1D<float>(data.Length + 3);
        dst.MemSetToZero();
        accelerator.Synchronize();
        using var start = new CudaEvent(ilgpu.Device);
        using var end = new CudaEvent(ilgpu.Device);
        start.Record(stream);
        ilgpu.Kernels.Copy(src.View, dst.View.SubView(1, data.Length), stream);
        end.Record(stream);
        end.Synchronize();
        Assert.True(CudaEvent.ElapsedMilliseconds(start, end) >= 0f);
        var back = dst.GetAsArray1D();
        Assert.Equal(0f, back[0]);
        Assert.True(data.AsSpan().SequenceEqual(back.AsSpan(1, data.Length)), rng.ToString());
        Assert.True(ilgpu.Device.IsCurrent);
    }

    [GpuFact]
    public void AnotherContextMadeCurrentInBetweenDoesNotBreakIlgpu()
    {
        // The GpuBench failure ("invalid resource handle"): our primary context made current behind ILGPU's back, after
        // which ILGPU believed its accelerator still bound and used its handles in the wrong context.
        var accelerator = ilgpu.Accelerator;
        using var src = accelerator.Allocate1D(Enumerable.Range(0, 1000).Select(i => (float)i).ToArray());
        using var dst = accelerator.Allocate1D<float>(1000);
        gpu.Device.MakeCurrent();
        Assert.False(ilgpu.Device.IsCurrent);
        ilgpu.Kernels.Copy(src.View, dst.View); // binds ILGPU's context again before launching
        Assert.True(ilgpu.Device.IsCurrent);
        accelerator.Synchronize();
        Assert.Equal(999f, dst.GetAsArray1D()[999]);
    }

    [GpuFact]
    public void ViewsAndStreamsOfTheWrongOwnerOrLengthAreRefused()
    {
        var accelerator = ilgpu.Accelerator;
        using var a = accelerator.Allocate1D<float>(100);
        using var i = accelerator.Allocate1D<int>(10);
        var k = ilgpu.Kernels;
        var e = Assert.Throws<ArgumentException>(() => k.TopKSoftmax(a.View, 2, 100, 5, 1f, i.View, a.View));
        Assert.Contains("logits has 100 elements", e.Message);
        Assert.Throws<ArgumentException>(() => k.Copy(a.View, a.View.SubView(0, 50)));
        using var context = Context.Create(b => b.CPU());
        using var cpu = context.CreateCPUAccelerator(0);
        using var cpuBuffer = cpu.Allocate1D<float>(100);
        Assert.Throws<ArgumentException>(() => k.Copy(cpuBuffer.View, a.View));
        Assert.Throws<ArgumentException>(() => k.Copy(a.View, a.View, cpu.DefaultStream));
        // kernels in a context of their own refuse ILGPU views
        Assert.Throws<InvalidOperationException>(() => gpu.Kernels.Copy(a.View, a.View));
    }

    [GpuFact]
    public void AnOutOfRangeLaunchRaisesCudaExceptionNamingTheCall()
    {
        var ptx = new PtxCache(ilgpu.CacheDirectory).GetOrCompileKernel(KernelSources.Copy, ilgpu.Device).Ptx;
        using var module = ilgpu.Device.LoadModule(ptx);
        var copy = module.GetFunction(CudaLossKernels.CopyEntry);
        using var buffer = ilgpu.Accelerator.Allocate1D<float>(16);
        var p = IlgpuInterop.PointerOf(buffer.View);
        var args = new KernelArguments().Add(p).Add(p.Add<float>(8)).Add(8L);
        // 4096 threads per block: more than any CUDA device allows
        var e = Assert.Throws<CudaException>(() => copy.Launch(1, 4096, 0, args));
        Assert.Equal("cuLaunchKernel", e.Call);
        Assert.Equal(CudaResult.InvalidValue, e.Result);
        Assert.Contains("cuLaunchKernel failed: CUDA_ERROR_INVALID_VALUE", e.Message);
        // the context is still usable afterwards
        copy.Launch(1, 32, 0, args);
        ilgpu.Device.Synchronize();
    }
}
