using ILGPU.Runtime;

namespace Raft.Kernels;

/// <summary>
/// Loss kernels chosen for a <see cref="ComputeDevice"/>, with the device they resolved to and a one-line account of
/// the choice (for the log). Made by the one factory, <c>Raft.Kernels.Cuda.KernelBackendFactory</c>; disposing the
/// backend disposes its kernels (and the accelerator and context they own).
/// </summary>
public sealed class KernelBackend : IDisposable
{
    /// <summary>Wraps <paramref name="kernels"/>, which then belong to the backend.</summary>
    /// <param name="kernels">The kernels; disposed with the backend when they are <see cref="IDisposable"/>.</param>
    /// <param name="device">Where they run: <see cref="ComputeDevice.Cpu"/>, <see cref="ComputeDevice.Cuda"/> or
    /// <see cref="ComputeDevice.CudaC"/>, never <see cref="ComputeDevice.Auto"/>; the GPU devices need kernels that run
    /// on an accelerator (<see cref="IDeviceLossKernels"/>).</param>
    /// <param name="description">E.g. "cuda: NVIDIA H100 (ilgpu-cuda)" or "cpu-vector512 (auto: no CUDA device: …)".</param>
    /// <exception cref="ArgumentException"><paramref name="device"/> is Auto or undefined, or a GPU device was given
    /// kernels without an accelerator.</exception>
    public KernelBackend(ILossKernels kernels, ComputeDevice device, string description)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        ArgumentNullException.ThrowIfNull(description);
        if (device is not (ComputeDevice.Cpu or ComputeDevice.Cuda or ComputeDevice.CudaC))
            Guard.Throw($"device must be the resolved device (cpu, cuda or cuda-c), got {(Enum.IsDefined(device) ? ComputeDevices.Name(device) : ((int)device).ToString(System.Globalization.CultureInfo.InvariantCulture))}.", nameof(device));
        if (device != ComputeDevice.Cpu && kernels is not IDeviceLossKernels)
            Guard.Throw($"device {ComputeDevices.Name(device)} needs kernels that run on an accelerator (IDeviceLossKernels), got {kernels.Name}.", nameof(kernels));
        Kernels = kernels;
        Device = device;
        Description = description;
    }

    /// <summary>The kernels.</summary>
    public ILossKernels Kernels { get; }

    /// <summary>Where the kernels run: Cpu, Cuda or CudaC (what <see cref="ComputeDevice.Auto"/> resolved to).</summary>
    public ComputeDevice Device { get; }

    /// <summary>One line for the log, e.g. "cuda: NVIDIA H100 (ilgpu-cuda)" or "cpu-vector512 (auto: no CUDA device: …)".</summary>
    public string Description { get; }

    /// <summary>The kernels' device-resident overloads (<see cref="IDeviceLossKernels"/>) when they run on an accelerator, else null.</summary>
    public IDeviceLossKernels? DeviceKernels => Kernels as IDeviceLossKernels;

    /// <summary>
    /// The ILGPU accelerator the kernels run on (ILGPU's CUDA accelerator for Cuda and CudaC), or null on the CPU.
    /// Others may run on it too (the GPU student does), as long as the backend is not disposed.
    /// </summary>
    public Accelerator? Accelerator => DeviceKernels?.Accelerator;

    /// <summary>Disposes the kernels (and what they own).</summary>
    public void Dispose() => (Kernels as IDisposable)?.Dispose();
}
