namespace Raft.Kernels.Tests;
public class SmokeTests { [Fact] public void Builds() => Assert.Equal("reference", ReferenceKernels.Instance.Name); }
