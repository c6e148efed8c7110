using System.Runtime.CompilerServices;

// ILGPU's CPU backend emits the kernel launchers into a dynamic assembly named "ILGPURuntime"; the kernels'
// parameter structs are internal, so that assembly must see them.
[assembly: InternalsVisibleTo("ILGPURuntime")]
