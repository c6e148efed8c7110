using Raft.Cuda;
using Raft.Kernels;

namespace Raft.Cli;

/// <summary>The values of <c>--device</c>.</summary>
internal enum DeviceChoice
{
    /// <summary>CUDA (ILGPU) when a GPU is usable, else the CPU; says once on stderr what it picked and why.</summary>
    Auto,
    /// <summary>The SIMD CPU kernels.</summary>
    Cpu,
    /// <summary>The ILGPU kernels on ILGPU's CUDA accelerator; an error without a usable GPU.</summary>
    Cuda,
    /// <summary>The hand-written CUDA C kernels (kernels/*.cu through NVRTC, <see cref="CudaCKernels"/>); an error without a GPU or NVRTC.</summary>
    CudaC,
}

/// <summary>Chooses the loss kernels the commands run on (<c>--device auto|cpu|cuda|cuda-c</c>).</summary>
internal static class KernelFactory
{
    /// <summary>The accepted values, for messages and help.</summary>
    public const string Choices = "auto, cpu, cuda or cuda-c";

    /// <summary>The help name of a <c>--device</c> option.</summary>
    public const string HelpName = "auto|cpu|cuda|cuda-c";

    /// <summary>The description of a <c>--device</c> option.</summary>
    public const string Help =
        "Where the loss kernels run: auto (CUDA when a GPU is usable, else the CPU; says once on stderr which and why), " +
        "cpu, cuda (ILGPU's CUDA accelerator) or cuda-c (the hand-written CUDA C kernels, compiled by NVRTC).";

    /// <summary>Parses a <c>--device</c> value (case-insensitive).</summary>
    /// <exception cref="UsageException">Not one of <see cref="Choices"/>; the message names <paramref name="option"/> and the value.</exception>
    public static DeviceChoice Parse(string? text, string option = "--device") => text?.Trim().ToLowerInvariant() switch
    {
        "auto" => DeviceChoice.Auto,
        "cpu" => DeviceChoice.Cpu,
        "cuda" => DeviceChoice.Cuda,
        "cuda-c" => DeviceChoice.CudaC,
        _ => throw new UsageException($"{option} must be {Choices}, got '{text}'."),
    };

    /// <summary>The value's spelling on the command line.</summary>
    public static string Name(DeviceChoice device) => device switch
    {
        DeviceChoice.Cpu => "cpu",
        DeviceChoice.Cuda => "cuda",
        DeviceChoice.CudaC => "cuda-c",
        _ => "auto",
    };

    /// <summary>
    /// The kernels for a run on <paramref name="device"/>; <paramref name="threads"/> is null for "all cores". Every
    /// choice but cpu writes one line to <paramref name="log"/>: <c>raft: kernels on …</c>, with the reason when
    /// auto falls back to the CPU.
    /// </summary>
    /// <exception cref="UsageException">cuda or cuda-c was asked for and cannot run here (the message names the device and says why).</exception>
    public static KernelBackend Create(DeviceChoice device, int? threads, TextWriter? log = null)
    {
        int cpuThreads = threads ?? 0;
        KernelBackend backend;
        switch (device)
        {
            case DeviceChoice.Cpu:
                var cpu = new CpuKernels(cpuThreads);
                return new KernelBackend(cpu, cpu.Name);
            case DeviceChoice.CudaC:
                if (!CudaCKernels.TryCreate(cpuThreads, out var cudaC, out var why))
                    throw new UsageException($"--device cuda-c: no usable CUDA device ({why}).");
                backend = new KernelBackend(cudaC, cudaC.Description);
                break;
            case DeviceChoice.Cuda:
                if (!CudaDevice.IsAvailable)
                    throw new UsageException($"--device cuda: no usable CUDA device (no CUDA device: {CudaDevice.UnavailableReason}).");
                try { backend = KernelBackends.Create(ComputeDevice.Cuda, cpuThreads); }
                catch (InvalidOperationException e) { throw new UsageException(e.Message); }
                break;
            default:
                if (!CudaDevice.IsAvailable)
                {
                    // the driver's own probe: cheaper and clearer than ILGPU's when there is no GPU at all
                    var fallback = new CpuKernels(cpuThreads);
                    backend = new KernelBackend(fallback, $"{fallback.Name} (auto: no CUDA device: {CudaDevice.UnavailableReason})");
                }
                else backend = KernelBackends.Create(ComputeDevice.Auto, cpuThreads);
                break;
        }
        if (log is not null) Announce(device, backend, log);
        return backend;
    }

    /// <summary>The one line that every choice but cpu writes: <c>raft: kernels on …</c> (for callers that check more inputs before saying it).</summary>
    public static void Announce(DeviceChoice device, KernelBackend backend, TextWriter log)
    {
        if (device != DeviceChoice.Cpu) log.WriteLine($"raft: kernels on {backend.Description}");
    }
}
