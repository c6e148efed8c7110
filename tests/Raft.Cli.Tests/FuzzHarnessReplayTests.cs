using Raft.Fuzz;

namespace Raft.Cli.Tests;

/// <summary>
/// The SharpFuzz harness (fuzz/Raft.Fuzz, docs/fuzzing.md) without libFuzzer: every target's committed seed corpus
/// (fuzz/corpus/&lt;target&gt;/) is replayed in-process and each seed is read; damaged seeds (empty, halved, a flipped byte)
/// are read or refused with the parser's typed error naming the file, never a crash; the seed writer still writes
/// readable seeds; every input that crashed a parser under libFuzzer (fuzz/regressions/) is refused by name. CI thus proves the harness builds and runs; scripts/fuzz.sh runs it under libFuzzer.
/// </summary>
public class FuzzHarnessReplayTests
{
    private static string FuzzRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Raft.Tests.slnf"))) return Path.Combine(dir.FullName, "fuzz");
        throw new InvalidOperationException("the repository root (Raft.Tests.slnf) is not above " + AppContext.BaseDirectory);
    }

    private static string CorpusRoot() => Path.Combine(FuzzRoot(), "corpus");

    public static TheoryData<string> Targets() => [.. FuzzTargets.All.Keys];

    [Fact]
    public void Every_target_has_a_committed_seed_corpus_and_every_corpus_a_target()
    {
        var corpora = Directory.GetDirectories(CorpusRoot()).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(FuzzTargets.All.Keys.Order(StringComparer.Ordinal), corpora);
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void The_committed_seeds_are_read_and_their_damaged_copies_never_crash(string name)
    {
        var target = FuzzTargets.All[name];
        var seeds = Directory.GetFiles(Path.Combine(CorpusRoot(), name));
        Assert.NotEmpty(seeds);
        foreach (string seed in seeds)
        {
            byte[] bytes = File.ReadAllBytes(seed);
            var refused = target.Run(bytes);
            Assert.True(refused is null, $"{seed}: refused by {name}: {refused?.Message}");
            // damaged copies: each run must return (read or refused by the typed error); an escaping exception fails the test
            target.Run([]);
            target.Run(bytes[..(bytes.Length / 2)]);
            var flipped = (byte[])bytes.Clone();
            flipped[bytes.Length / 3] ^= 0x5a;
            target.Run(flipped);
        }
    }

    [Fact]
    public void The_inputs_that_crashed_a_parser_under_libFuzzer_are_now_refused_by_name()
    {
        // fuzz/regressions/<target>/: each input a long run found (docs/fuzzing.md), kept after its fix
        var dirs = Directory.GetDirectories(Path.Combine(FuzzRoot(), "regressions"));
        Assert.NotEmpty(dirs);
        foreach (string dir in dirs)
        {
            string name = Path.GetFileName(dir);
            Assert.True(FuzzTargets.All.TryGetValue(name, out var target), $"fuzz/regressions/{name} names no target");
            foreach (string input in Directory.GetFiles(dir))
                Assert.True(target.Run(File.ReadAllBytes(input)) is not null, $"{input}: read, expected a refusal naming the file");
        }
    }

    [Fact]
    public void A_typed_error_is_returned_as_a_refusal_naming_the_file()
    {
        var refused = FuzzTargets.All["teacher-cache"].Run("not a cache"u8);
        var e = Assert.IsType<InvalidDataException>(refused);
        Assert.Contains("teacher.cache", e.Message);
    }

    [Fact]
    public void The_seed_writer_writes_a_readable_corpus_for_every_target()
    {
        using var dir = new TempDirectory();
        Seeds.Write(dir.Path);
        foreach (var (name, target) in FuzzTargets.All)
        {
            var files = Directory.GetFiles(Path.Combine(dir.Path, name));
            Assert.NotEmpty(files);
            foreach (string f in files)
                Assert.True(target.Run(File.ReadAllBytes(f)) is null, $"{name}: {f} is refused");
        }
    }
}
