namespace Raft.Cuda.Tests;

public class KernelSourcesTests
{
    /// <summary>Every embedded kernel file and the extern "C" entry points its PTX must define.</summary>
    internal static readonly IReadOnlyDictionary<string, string[]> ExpectedEntries = new Dictionary<string, string[]>
    {
        ["copy.cu"] = ["raft_copy_f32"],
        ["kd_loss.cu"] = ["raft_kd_loss", "raft_kd_loss_resident1"],
        ["topk_softmax.cu"] = ["raft_topk_softmax", "raft_topk_softmax_filter"],
    };

    [Fact]
    public void EmbedsExactlyTheKernelFiles()
    {
        Assert.Equal(ExpectedEntries.Keys.Order(StringComparer.Ordinal), KernelSources.Names);
    }

    [Fact]
    public void ReadsBySimpleOrPrefixedName()
    {
        var source = KernelSources.Read(KernelSources.TopKSoftmax);
        Assert.Equal(source, KernelSources.Read("kernels/" + KernelSources.TopKSoftmax));
        Assert.Contains("extern \"C\" __global__ void raft_topk_softmax(", source);
    }

    [Fact]
    public void UnknownNameListsTheKnownOnes()
    {
        var e = Assert.Throws<ArgumentException>(() => KernelSources.Read("nope.cu"));
        Assert.Contains("kd_loss.cu", e.Message);
    }

    [Fact]
    public void EverySourceDocumentsItsEntryPointsAndShapes()
    {
        foreach (var (file, entries) in ExpectedEntries)
        {
            var source = KernelSources.Read(file);
            foreach (var entry in entries)
            {
                // once in the header comment, once as the definition
                int first = source.IndexOf($"void {entry}(", StringComparison.Ordinal);
                int last = source.LastIndexOf($"void {entry}(", StringComparison.Ordinal);
                Assert.True(first >= 0 && last > first, $"{file} should document and define {entry}");
            }
            Assert.DoesNotContain("#include", source);
        }
        Assert.Contains("[rows, vocab]", KernelSources.Read(KernelSources.TopKSoftmax));
        Assert.Contains("[rows, vocab]", KernelSources.Read(KernelSources.KdLoss));
    }
}
