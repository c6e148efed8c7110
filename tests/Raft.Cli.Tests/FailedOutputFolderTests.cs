namespace Raft.Cli.Tests;

/// <summary>
/// A command that fails removes the output folders it created itself while they are still empty (#19: failing commands
/// left empty <c>--out</c> folders behind), and never one that existed before it.
/// </summary>
public class FailedOutputFolderTests : CliHarness
{
    private string BadModel()
    {
        string dir = PathOf("badmodel");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), "{}");
        return dir;
    }

    [Fact]
    public void A_failed_export_removes_the_out_folder_and_the_parents_it_created()
    {
        string parent = PathOf("new"), outDir = Path.Combine(parent, "deeper", "onnx");
        var r = Raft("export-onnx", "--model", BadModel(), "--out", outDir);
        AssertUsageLastLine(r, "config.json");
        Assert.False(Directory.Exists(parent), r.ToString());
        Assert.True(Directory.Exists(Dir));
    }

    [Fact]
    public void A_failed_command_never_removes_a_folder_that_existed()
    {
        string outDir = PathOf("existing");
        Directory.CreateDirectory(outDir);
        AssertUsageLastLine(Raft("export-onnx", "--model", BadModel(), "--out", outDir), "config.json");
        Assert.True(Directory.Exists(outDir));

        // created parents above an existing folder go, the existing one stays
        string inside = Path.Combine(outDir, "a", "b");
        AssertUsageLastLine(Raft("export-onnx", "--model", BadModel(), "--out", inside), "config.json");
        Assert.False(Directory.Exists(Path.Combine(outDir, "a")));
        Assert.True(Directory.Exists(outDir));
    }

    [Fact]
    public void A_demo_with_a_bad_option_leaves_no_out_folder()
    {
        string outDir = PathOf("demo");
        AssertUsageLastLine(Raft("demo", "--out", outDir, "--steps", "0"), "--steps");
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void A_successful_command_keeps_the_folder_it_created()
    {
        string outDir = PathOf("example");
        var r = Raft("kd", "--example", "--rows", "2", "--vocab", "8", "--write-example", outDir, "--device", "cpu", "--top-k", "4");
        Assert.True(r.Code == 0, r.ToString());
        Assert.True(File.Exists(Path.Combine(outDir, "student.npy")));
    }

    [Fact]
    public void A_failed_command_keeps_a_created_folder_that_holds_files()
    {
        // --write-example writes its files, then the loss fails on its options: the folder holds output and stays.
        string outDir = PathOf("example");
        var r = Raft("kd", "--example", "--rows", "2", "--vocab", "8", "--write-example", outDir, "--device", "cpu", "--top-k", "99");
        AssertUsageLastLine(r, "--top-k", "99");
        Assert.True(File.Exists(Path.Combine(outDir, "student.npy")));
    }
}
