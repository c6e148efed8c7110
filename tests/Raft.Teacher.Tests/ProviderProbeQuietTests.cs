using System.Runtime.InteropServices;
using Raft.Kernels;
using static Raft.Teacher.Tests.TestModels;

namespace Raft.Teacher.Tests;

/// <summary>Runs alone: it captures the process's native standard error (file descriptor 2) while it opens a session.</summary>
[CollectionDefinition(nameof(NativeStderrCollection), DisableParallelization = true)]
public sealed class NativeStderrCollection;

/// <summary>
/// Provider auto (#19): when ONNX Runtime's CUDA provider cannot start, the session falls back to the CPU with the reason in
/// its one log line, and ONNX Runtime's own "Failed to load library libonnxruntime_providers_cuda.so" error is not
/// printed on standard error (the user did not ask for CUDA). On a machine where the provider starts there is nothing to see.
/// </summary>
[Collection(nameof(NativeStderrCollection))]
public class ProviderProbeQuietTests
{
    [DllImport("libc", SetLastError = true)] private static extern int dup(int fd);
    [DllImport("libc", SetLastError = true)] private static extern int dup2(int from, int to);
    [DllImport("libc", SetLastError = true)] private static extern int close(int fd);
    [DllImport("libc", SetLastError = true)] private static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, int mode);

    /// <summary>What the process writes to file descriptor 2 while <paramref name="action"/> runs.</summary>
    private static string CaptureNativeStderr(Action action)
    {
        using var dir = new TempDirectory();
        string file = Path.Combine(dir.Path, "stderr.txt");
        const int O_WRONLY = 1, O_CREAT = 0x40, O_TRUNC = 0x200;
        int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0x1B6);
        Assert.True(fd >= 0, "open failed");
        int saved = dup(2);
        Assert.True(saved >= 0, "dup failed");
        try
        {
            Assert.True(dup2(fd, 2) >= 0, "dup2 failed");
            action();
        }
        finally
        {
            dup2(saved, 2);
            close(saved);
            close(fd);
        }
        return File.ReadAllText(file);
    }

    [Fact]
    public void An_auto_session_whose_cuda_provider_cannot_start_prints_no_onnx_runtime_error()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var dir = new TempDirectory();
        var config = Tiny(false, false);
        OnnxExporter.Export(config, RandomParameters(config, seed: 3), dir.Path);
        var log = new List<string>();
        TeacherSession? teacher = null;
        string stderr = CaptureNativeStderr(() => teacher = TeacherSession.Open(dir.Path, new TeacherOptions { Provider = ComputeDevice.Auto, Log = log.Add }));
        using (teacher)
        {
            Assert.Single(log);
            if (teacher!.Provider == "CUDA") return; // the provider started: nothing was to be hidden
            Assert.DoesNotContain("libonnxruntime_providers_cuda", stderr);
            Assert.DoesNotContain("Failed to load library", stderr);
            // the reason is still said, once, in the session's own line
            Assert.Contains("running on CPU", log[0]);
            Assert.Contains(teacher.FallbackReason!, log[0]);
        }
    }
}
