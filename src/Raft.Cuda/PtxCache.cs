using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Raft.Cuda;

/// <summary>The outcome of a <see cref="PtxCache"/> lookup.</summary>
/// <param name="Ptx">The PTX text.</param>
/// <param name="Key">The cache key (64 hex digits of SHA-256).</param>
/// <param name="FilePath">The cache file holding the PTX.</param>
/// <param name="FromCache">True when the PTX was read from the cache, false when it was compiled now.</param>
/// <param name="Architecture">The architecture it was compiled for (compute_XY).</param>
public sealed record PtxCacheEntry(string Ptx, string Key, string FilePath, bool FromCache, string Architecture);

/// <summary>
/// An on-disk cache of NVRTC output. A source is compiled once per (source, name, options, architecture, NVRTC
/// version): the SHA-256 of those is the key and "&lt;key&gt;.ptx" the file. Files are written atomically (a
/// temporary file in the same directory, then a rename), so concurrent processes never read a partial file.
/// </summary>
public sealed class PtxCache
{
    /// <summary>The environment variable that overrides <see cref="DefaultDirectory"/>.</summary>
    public const string DirectoryVariable = "RAFT_PTX_CACHE_DIR";

    /// <summary>Creates a cache in <paramref name="directory"/>, or in <see cref="DefaultDirectory"/> when null (created on first write).</summary>
    public PtxCache(string? directory = null)
    {
        Directory = Path.GetFullPath(string.IsNullOrEmpty(directory) ? DefaultDirectory : directory);
    }

    /// <summary>
    /// $RAFT_PTX_CACHE_DIR when set; otherwise $XDG_CACHE_HOME/raft/ptx, or ~/.cache/raft/ptx when XDG_CACHE_HOME is unset.
    /// </summary>
    public static string DefaultDirectory
    {
        get
        {
            var explicitDir = Environment.GetEnvironmentVariable(DirectoryVariable);
            if (!string.IsNullOrEmpty(explicitDir)) return explicitDir;
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            var root = !string.IsNullOrEmpty(xdg)
                ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(root, "raft", "ptx");
        }
    }

    /// <summary>The directory holding the cache files.</summary>
    public string Directory { get; }

    /// <summary>
    /// The cache key: SHA-256 (hex) over the NVRTC version, the architecture, the options, the program name and the
    /// source, each length-prefixed so that no two different inputs serialize alike.
    /// </summary>
    public static string ComputeKey(string source, string name, string arch, IEnumerable<string> options, string compilerVersion)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(arch);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(compilerVersion);
        var sb = new StringBuilder("raft-ptx-cache/1\n");
        void Field(string label, string value) =>
            sb.Append(label).Append(' ').Append(value.Length.ToString(CultureInfo.InvariantCulture)).Append('\n').Append(value).Append('\n');
        Field("nvrtc", compilerVersion);
        Field("arch", arch);
        foreach (var o in options) Field("option", o);
        Field("name", name);
        Field("source", source);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())));
    }

    /// <summary>
    /// The PTX of <paramref name="source"/> for <paramref name="arch"/>: read from the cache when present and
    /// well formed, otherwise compiled with <see cref="NvrtcCompiler.CompileToPtx"/> and stored.
    /// </summary>
    /// <exception cref="NvrtcException">The source does not compile.</exception>
    /// <exception cref="InvalidOperationException">NVRTC is not available.</exception>
    public PtxCacheEntry GetOrCompile(string source, string name, string arch = NvrtcCompiler.DefaultArchitecture, IEnumerable<string>? extraOptions = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentException.ThrowIfNullOrEmpty(name);
        var extra = extraOptions?.ToArray() ?? [];
        var options = NvrtcCompiler.BuildOptions(arch, extra);
        var version = NvrtcCompiler.Version.ToString();
        var key = ComputeKey(source, name, arch, options, version);
        var path = Path.Combine(Directory, key + ".ptx");

        if (File.Exists(path))
        {
            string cached;
            try
            {
                cached = File.ReadAllText(path, Encoding.UTF8);
            }
            catch (IOException)
            {
                cached = "";
            }
            if (LooksLikePtx(cached)) return new PtxCacheEntry(cached, key, path, true, arch);
        }

        var ptx = NvrtcCompiler.CompileToPtx(source, name, arch, extra);
        System.IO.Directory.CreateDirectory(Directory);
        var temp = Path.Combine(Directory, $".{key}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            File.WriteAllText(temp, ptx, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
        return new PtxCacheEntry(ptx, key, path, false, arch);
    }

    /// <summary>An embedded kernel (<see cref="KernelSources"/>) for <paramref name="arch"/>.</summary>
    public PtxCacheEntry GetOrCompileKernel(string kernelFile, string arch = NvrtcCompiler.DefaultArchitecture, IEnumerable<string>? extraOptions = null) =>
        GetOrCompile(KernelSources.Read(kernelFile), kernelFile, arch, extraOptions);

    /// <summary>An embedded kernel for <paramref name="device"/>'s compute capability (<see cref="CudaDevice.ChooseArchitecture"/>).</summary>
    public PtxCacheEntry GetOrCompileKernel(string kernelFile, CudaDevice device, IEnumerable<string>? extraOptions = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        return GetOrCompileKernel(kernelFile, device.ChooseArchitecture(), extraOptions);
    }

    private static bool LooksLikePtx(string text) =>
        text.Contains(".version", StringComparison.Ordinal) && text.Contains(".target", StringComparison.Ordinal);
}
