using System.Reflection;

namespace Raft.Cuda;

/// <summary>
/// The CUDA C sources of kernels/*.cu, embedded in this assembly as resources named "kernels/&lt;file&gt;.cu".
/// </summary>
public static class KernelSources
{
    private const string Prefix = "kernels/";

    /// <summary>Fused top-K temperature softmax (entry point raft_topk_softmax).</summary>
    public const string TopKSoftmax = "topk_softmax.cu";

    /// <summary>Fused distillation loss and gradient (entry point raft_kd_loss).</summary>
    public const string KdLoss = "kd_loss.cu";

    /// <summary>Device-to-device fp32 copy, the bandwidth ceiling (entry point raft_copy_f32).</summary>
    public const string Copy = "copy.cu";

    private static readonly Assembly s_assembly = typeof(KernelSources).Assembly;

    private static readonly Lazy<IReadOnlyList<string>> s_names = new(() =>
        s_assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(Prefix, StringComparison.Ordinal) && n.EndsWith(".cu", StringComparison.Ordinal))
            .Select(n => n[Prefix.Length..])
            .Order(StringComparer.Ordinal)
            .ToArray());

    /// <summary>The file names of the embedded kernels ("copy.cu", "kd_loss.cu", …), sorted.</summary>
    public static IReadOnlyList<string> Names => s_names.Value;

    /// <summary>The source of an embedded kernel, by file name ("topk_softmax.cu" or "kernels/topk_softmax.cu").</summary>
    /// <exception cref="ArgumentException">No embedded kernel has that name (the message lists those that exist).</exception>
    public static string Read(string fileName)
    {
        ArgumentException.ThrowIfNullOrEmpty(fileName);
        var resource = fileName.StartsWith(Prefix, StringComparison.Ordinal) ? fileName : Prefix + fileName;
        using var stream = s_assembly.GetManifestResourceStream(resource)
            ?? throw new ArgumentException($"No embedded kernel named '{fileName}'; there are: {string.Join(", ", Names)}.", nameof(fileName));
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
