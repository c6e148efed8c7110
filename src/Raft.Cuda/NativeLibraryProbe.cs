using System.Runtime.InteropServices;

namespace Raft.Cuda;

/// <summary>Finds a native library among candidate names (and a few CUDA install directories) with <see cref="NativeLibrary.TryLoad(string, out IntPtr)"/>.</summary>
internal static class NativeLibraryProbe
{
    /// <summary>Directories searched after the loader's own search path, for each candidate name in turn.</summary>
    private static IEnumerable<string> ExtraDirectories()
    {
        foreach (var variable in new[] { "CUDA_HOME", "CUDA_PATH" })
        {
            var root = Environment.GetEnvironmentVariable(variable);
            if (!string.IsNullOrEmpty(root))
            {
                yield return Path.Combine(root, "lib64");
                yield return Path.Combine(root, "lib");
                yield return Path.Combine(root, "bin");
            }
        }
        if (OperatingSystem.IsLinux())
        {
            yield return "/usr/local/cuda/lib64";
            yield return "/usr/lib/x86_64-linux-gnu";
            yield return "/usr/lib/aarch64-linux-gnu";
            yield return "/usr/lib/wsl/lib";
        }
    }

    /// <summary>
    /// Loads the first library that opens. <paramref name="overrideVariable"/> names an environment variable that may
    /// hold an explicit path, tried first. Returns false with the names tried when none opens.
    /// </summary>
    public static bool TryLoad(IReadOnlyList<string> names, string overrideVariable, out IntPtr handle, out string loadedName, out string reason)
    {
        var tried = new List<string>();
        var explicitPath = Environment.GetEnvironmentVariable(overrideVariable);
        if (!string.IsNullOrEmpty(explicitPath))
        {
            tried.Add(explicitPath);
            if (NativeLibrary.TryLoad(explicitPath, out handle))
            {
                loadedName = explicitPath;
                reason = "";
                return true;
            }
        }
        var directories = ExtraDirectories().Where(Directory.Exists).Distinct().ToArray();
        foreach (var name in names)
        {
            tried.Add(name);
            if (NativeLibrary.TryLoad(name, out handle))
            {
                loadedName = name;
                reason = "";
                return true;
            }
            foreach (var dir in directories)
            {
                var path = Path.Combine(dir, name);
                if (File.Exists(path) && NativeLibrary.TryLoad(path, out handle))
                {
                    loadedName = path;
                    reason = "";
                    return true;
                }
            }
        }
        handle = IntPtr.Zero;
        loadedName = "";
        reason = $"none of {string.Join(", ", tried)} could be loaded (set {overrideVariable} to the library's path)";
        return false;
    }

    /// <summary>The address of a required export; throws <see cref="EntryPointNotFoundException"/> naming it.</summary>
    public static IntPtr Export(IntPtr library, string libraryName, string symbol) =>
        NativeLibrary.TryGetExport(library, symbol, out var address)
            ? address
            : throw new EntryPointNotFoundException($"{libraryName} has no export named {symbol}.");

    /// <summary>The address of an optional export, or zero.</summary>
    public static IntPtr OptionalExport(IntPtr library, string symbol) =>
        NativeLibrary.TryGetExport(library, symbol, out var address) ? address : IntPtr.Zero;
}
