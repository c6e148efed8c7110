namespace Raft.Model.Tests;

/// <summary>
/// <see cref="AtomicFile.WriteAll"/>: several files as one output. A writer that fails leaves every destination as it
/// was and no temporary file; a file-system failure on a temporary file is an <see cref="OutputWriteException"/> naming
/// the destination (not the temporary file) with the original errno.
/// </summary>
public class AtomicFileWriteAllTests
{
    [Fact]
    public void A_failing_second_writer_leaves_the_first_destination_as_it_was_and_no_temporary_file()
    {
        using var dir = new TempDirectory();
        string a = dir.File("a.txt"), b = dir.File("b.txt");
        File.WriteAllText(a, "old");
        Assert.Throws<InvalidOperationException>(() => AtomicFile.WriteAll([
            (a, s => s.Write("new"u8)),
            (b, _ => throw new InvalidOperationException("the second writer fails (simulated)")),
        ]));
        Assert.Equal("old", File.ReadAllText(a));
        Assert.Equal([a], Directory.GetFiles(dir.Path));

        AtomicFile.WriteTexts([(a, "new a"), (b, "new b")]);
        Assert.Equal("new a", File.ReadAllText(a));
        Assert.Equal("new b", File.ReadAllText(b));
        Assert.Equal(2, Directory.GetFiles(dir.Path).Length);
    }

    [Fact]
    public void A_file_system_failure_names_the_destination_not_the_temporary_file()
    {
        using var dir = new TempDirectory();
        string target = dir.File("out.jsonl");
        var e = Assert.Throws<OutputWriteException>(() => AtomicFile.Write(target, s =>
        {
            // as the file system reports a failure on the temporary file (errno 28, ENOSPC)
            string temp = ((FileStream)s).Name;
            throw new IOException($"No space left on device : '{temp}'", 28);
        }));
        Assert.Equal(target, e.Path);
        Assert.Equal(28, e.HResult);
        Assert.Equal($"{target}: No space left on device", e.Message);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }
}
