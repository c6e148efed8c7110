using Raft.Kernels;
using Raft.Kernels.Cuda;

namespace Raft.Cli;

/// <summary>
/// The command line's side of <c>--device auto|cpu|cuda|cuda-c</c>: its help, its parse error, and the flag added to
/// the errors of <see cref="KernelBackendFactory"/> (which knows nothing of flags). The device vocabulary itself is
/// <see cref="ComputeDevice"/> / <see cref="ComputeDevices"/>.
/// </summary>
internal static class DeviceOption
{
    /// <summary>The help name of a <c>--device</c> option.</summary>
    public const string HelpName = "auto|cpu|cuda|cuda-c";

    /// <summary>The description of a <c>--device</c> option.</summary>
    public const string Help =
        "Where the loss kernels run: auto (CUDA when a GPU is usable, else the CPU; says once on stderr which and why), " +
        "cpu, cuda (ILGPU's CUDA accelerator) or cuda-c (the hand-written CUDA C kernels, compiled by NVRTC).";

    /// <summary>Parses a <c>--device</c> value (case-insensitive).</summary>
    /// <exception cref="UsageException">Not one of <see cref="ComputeDevices.Choices"/>; the message names <paramref name="option"/> and the value.</exception>
    public static ComputeDevice Parse(string? text, string option = "--device") =>
        ComputeDevices.TryParse(text, out var device) ? device : throw new UsageException(Invalid(option, text));

    /// <summary>The error of a value that is not a device: <c>--device must be auto, cpu, cuda or cuda-c, got 'gpu'.</c></summary>
    public static string Invalid(string option, string? text) => $"{option} must be {ComputeDevices.Choices}, got '{text}'.";

    /// <summary>
    /// The kernels for a run on <paramref name="device"/> (<see cref="KernelBackendFactory.Create"/>); <paramref name="threads"/>
    /// is null for "all cores". With <paramref name="log"/>, every choice but cpu writes one line to it:
    /// <c>raft: kernels on …</c>, with the reason when auto falls back to the CPU.
    /// </summary>
    /// <exception cref="UsageException">cuda or cuda-c was asked for and cannot run here: <c>--device cuda: no usable CUDA device (…).</c></exception>
    public static KernelBackend Create(ComputeDevice device, int? threads, TextWriter? log = null)
    {
        KernelBackend backend;
        try { backend = KernelBackendFactory.Create(device, threads ?? 0); }
        catch (InvalidOperationException e) { throw new UsageException($"--device {ComputeDevices.Name(device)}: {e.Message}"); }
        if (log is not null) Announce(device, backend, log);
        return backend;
    }

    /// <summary>The one line that every choice but cpu writes: <c>raft: kernels on …</c> (for callers that check more inputs before saying it).</summary>
    public static void Announce(ComputeDevice device, KernelBackend backend, TextWriter log)
    {
        if (device != ComputeDevice.Cpu) log.WriteLine($"raft: kernels on {backend.Description}");
    }
}
