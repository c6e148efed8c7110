namespace Raft.Cuda.Tests;

public class NvrtcTests
{
    /// <summary>Architectures the project builds for; each is checked where the loaded NVRTC supports it.</summary>
    private static readonly int[] ProjectArchitectures = [75, 80, 86, 89, 90];

    [NvrtcFact]
    public void ReportsVersionAndArchitectures()
    {
        Assert.False(string.IsNullOrEmpty(NvrtcCompiler.LibraryName));
        Assert.True(NvrtcCompiler.Version.Major >= 11, $"NVRTC {NvrtcCompiler.Version}");
        Assert.Contains(80, NvrtcCompiler.SupportedArchitectures);
        Assert.Equal(NvrtcCompiler.SupportedArchitectures.Order(), NvrtcCompiler.SupportedArchitectures);
        Assert.Null(NvrtcCompiler.UnavailableReason);
    }

    [NvrtcFact]
    public void EveryEmbeddedKernelCompilesAndDefinesItsEntryPoints()
    {
        string arch = NvrtcCompiler.ChooseArchitecture(8, 0);
        Assert.Equal("compute_80", arch);
        foreach (var file in KernelSources.Names)
        {
            Assert.True(KernelSourcesTests.ExpectedEntries.TryGetValue(file, out var entries), $"no expected entry points listed for {file}");
            var ptx = NvrtcCompiler.CompileToPtx(KernelSources.Read(file), file, arch);
            Assert.Contains(".target sm_80", ptx);
            foreach (var entry in entries)
                Assert.Contains($".entry {entry}(", ptx);
        }
    }

    [NvrtcFact]
    public void EveryKernelCompilesForEveryProjectArchitectureThisNvrtcSupports()
    {
        var archs = ProjectArchitectures.Intersect(NvrtcCompiler.SupportedArchitectures).ToArray();
        Assert.NotEmpty(archs);
        foreach (int a in archs)
            foreach (var file in KernelSources.Names)
            {
                var ptx = NvrtcCompiler.CompileToPtx(KernelSources.Read(file), file, $"compute_{a}");
                Assert.Contains($".target sm_{a}", ptx);
            }
    }

    [NvrtcFact]
    public void BrokenSourceRaisesNvrtcExceptionNamingTheLine()
    {
        const string source = """
            extern "C" __global__ void broken(float* x)
            {
                int i = threadIdx.x;
                x[i] = undefined_symbol * 2.0f;
            }
            """;
        var e = Assert.Throws<NvrtcException>(() => NvrtcCompiler.CompileToPtx(source, "broken.cu"));
        Assert.Equal(NvrtcResult.Compilation, e.Result);
        Assert.Equal("NVRTC_ERROR_COMPILATION", e.ResultName);
        Assert.Equal("nvrtcCompileProgram", e.Call);
        Assert.Equal("broken.cu", e.ProgramName);
        Assert.Contains("broken.cu(4)", e.Log);
        Assert.Contains("undefined_symbol", e.Log);
        Assert.Contains(e.Log.Trim(), e.Message);
    }

    [NvrtcFact]
    public void UnknownArchitectureRaisesInvalidOption()
    {
        var e = Assert.Throws<NvrtcException>(() => NvrtcCompiler.CompileToPtx(KernelSources.Read(KernelSources.Copy), "copy.cu", "compute_11"));
        Assert.Equal(NvrtcResult.InvalidOption, e.Result);
        Assert.Equal("nvrtcCompileProgram", e.Call);
    }

    [NvrtcFact]
    public void ExtraOptionsAreApplied()
    {
        const string source = """
            #ifndef RAFT_TEST_FLAG
            #error RAFT_TEST_FLAG is not defined
            #endif
            extern "C" __global__ void flagged(float* x) { x[threadIdx.x] = RAFT_TEST_FLAG; }
            """;
        Assert.Throws<NvrtcException>(() => NvrtcCompiler.CompileToPtx(source, "flag.cu"));
        var ptx = NvrtcCompiler.CompileToPtx(source, "flag.cu", extraOptions: ["-DRAFT_TEST_FLAG=3.0f"]);
        Assert.Contains(".entry flagged(", ptx);
    }

    [Fact]
    public void RejectsAMalformedArchitectureBeforeCallingNvrtc()
    {
        Assert.Throws<ArgumentException>(() => NvrtcCompiler.CompileToPtx("", "x.cu", "sm_80"));
        Assert.Throws<ArgumentException>(() => NvrtcCompiler.CompileToPtx("", "x.cu", "compute_"));
        Assert.Throws<ArgumentException>(() => NvrtcCompiler.BuildOptions("compute_8x", null));
        Assert.Equal(["--gpu-architecture=compute_90a", "-lineinfo"], NvrtcCompiler.BuildOptions("compute_90a", ["-lineinfo"]));
    }

    [Fact]
    public void ChoosesTheNewestSupportedArchitectureNotAboveTheDevice()
    {
        int[] cuda118 = [35, 37, 50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87, 89, 90];
        int[] cuda13 = [75, 80, 86, 87, 88, 89, 90, 100, 103, 110, 120, 121];
        Assert.Equal("compute_90", NvrtcCompiler.ChooseArchitecture(9, 0, cuda118));
        Assert.Equal("compute_90", NvrtcCompiler.ChooseArchitecture(9, 0, cuda13));
        Assert.Equal("compute_90", NvrtcCompiler.ChooseArchitecture(10, 0, cuda118));
        Assert.Equal("compute_100", NvrtcCompiler.ChooseArchitecture(10, 0, cuda13));
        Assert.Equal("compute_86", NvrtcCompiler.ChooseArchitecture(8, 6, cuda118));
        Assert.Equal("compute_70", NvrtcCompiler.ChooseArchitecture(7, 0, cuda118));
        Assert.Throws<NotSupportedException>(() => NvrtcCompiler.ChooseArchitecture(7, 0, cuda13));
    }

    [Fact]
    public void NvrtcExceptionCarriesItsParts()
    {
        var e = new NvrtcException(NvrtcResult.Compilation, "NVRTC_ERROR_COMPILATION", "nvrtcCompileProgram", "k.cu(3): error: oops\n", "k.cu");
        Assert.Contains("nvrtcCompileProgram", e.Message);
        Assert.Contains("NVRTC_ERROR_COMPILATION (6)", e.Message);
        Assert.Contains("k.cu(3): error: oops", e.Message);
    }
}
