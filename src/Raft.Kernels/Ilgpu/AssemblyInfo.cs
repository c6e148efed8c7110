using System.Runtime.CompilerServices;

// ILGPU's CPU backend emits the kernel launchers into a dynamic assembly named "ILGPURuntime"; the kernels'
// parameter structs (Raft.Kernels.Ilgpu.*Params, DeviceSummary) are internal, so that assembly must see them.
[assembly: InternalsVisibleTo("ILGPURuntime")]
