using System.Security.Cryptography;

namespace Raft.Cli.Tests;

/// <summary>
/// <c>raft demo</c> finds its base wherever the binary runs: the build copies both committed bases next to it
/// (issue #19: a published run outside the repository used to start a 27-minute pretrain into ./models).
/// </summary>
public sealed class DemoBaseLocationTests
{
    [Theory]
    [InlineData("models/demo-base")]
    [InlineData("models/demo-v2-base")]
    public void BothBasesTravelWithTheBinaryAndAreTheCommittedFiles(string rel)
    {
        string besideBinary = Path.Combine(Path.GetDirectoryName(typeof(Program).Assembly.Location)!, rel);
        Assert.True(File.Exists(Path.Combine(besideBinary, "model.safetensors")), $"{besideBinary}/model.safetensors was not copied by the build");
        string committed = Path.Combine(RepoRoot(), rel, "model.safetensors");
        Assert.Equal(Sha(committed), Sha(Path.Combine(besideBinary, "model.safetensors")));
        string found = Raft.Cli.Commands.DemoCommand.FindBase(rel);
        Assert.True(File.Exists(Path.Combine(found, "config.json")), $"FindBase({rel}) gave {found}");
    }

    private static string Sha(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Raft.Tests.slnf"))) return dir.FullName;
        throw new InvalidOperationException("the repository root (Raft.Tests.slnf) is not above " + AppContext.BaseDirectory);
    }
}
