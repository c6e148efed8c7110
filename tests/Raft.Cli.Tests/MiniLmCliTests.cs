using System.Text.Json;
using Raft.Pipeline.Filtering;

namespace Raft.Cli.Tests;

/// <summary><c>raft refine --embedding-model minilm|ngram|DIR</c>: the package's model found and extracted once, bad values refused by name.</summary>
[Collection(nameof(MiniLmCliCollection))]
public class MiniLmCliTests : CliHarness
{
    [Fact]
    public void The_package_assembly_is_found_where_restore_put_it()
    {
        string dll = MiniLmLocator.Find();
        Assert.True(File.Exists(dll), dll);
        Assert.Equal(MiniLm.AssemblyFile, Path.GetFileName(dll));
        var listed = EmbeddedResourceCache.ListResources(dll);
        foreach (var f in MiniLm.Files) Assert.Equal(f.Size, listed[f.ResourceName]);
    }

    [Fact]
    public void A_bad_embedding_model_is_refused_by_flag_and_value()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string refined = PathOf("refined.jsonl");
        var r = Raft("refine", "--teacher", ckpt, "--data", data, "--out", refined, "--embedding-model", "minlm");
        AssertUsageLastLine(r, "--embedding-model", "embedding_model = minlm", "ngram, minilm or an existing model folder");
        Assert.False(File.Exists(refined));
        string config = PathOf("refine.json");
        File.WriteAllText(config, "{\"embedding_model\": \"mini-lm\"}");
        AssertUsageLastLine(Raft("refine", "--teacher", ckpt, "--data", data, "--out", refined, "--config", config), "embedding_model = mini-lm");
    }

    [Fact]
    public void Refine_with_minilm_scores_candidates_by_the_model_and_extracts_it_once()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"), count: 2);
        string cache = PathOf("cache");
        string? before = Environment.GetEnvironmentVariable("RAFT_CACHE_DIR");
        Environment.SetEnvironmentVariable("RAFT_CACHE_DIR", cache);
        try
        {
            for (int run = 0; run < 2; run++)
            {
                string refined = PathOf($"refined{run}.jsonl");
                var r = Raft("refine", "--teacher", ckpt, "--data", data, "--out", refined, "--candidates", "2", "--max-new-tokens", "6",
                    "--threads", "1", "--extractor", "none", "--embedding-model", "minilm");
                Assert.True(r.Code == 0, r.ToString());
                var scores = File.ReadAllLines(refined)
                    .SelectMany(l => JsonDocument.Parse(l).RootElement.GetProperty("candidates").EnumerateArray())
                    .Select(c => c.GetProperty("scores"))
                    .Where(s => s.TryGetProperty("similarity:minilm", out _))
                    .Select(s => s.GetProperty("similarity:minilm").GetDouble()).ToList();
                Assert.NotEmpty(scores);
                Assert.All(scores, s => Assert.InRange(s, 0, 1));
                Assert.Equal([Path.Combine(cache, MiniLm.FolderName)], Directory.GetDirectories(cache));
                if (run == 0) File.SetLastWriteTimeUtc(Path.Combine(cache, MiniLm.FolderName, "model.onnx"), new DateTime(2020, 1, 1, 0, 0, 0, DateTimeKind.Utc));
            }
            // the second run used the first run's extraction
            Assert.Equal(2020, File.GetLastWriteTimeUtc(Path.Combine(cache, MiniLm.FolderName, "model.onnx")).Year);
        }
        finally
        {
            Environment.SetEnvironmentVariable("RAFT_CACHE_DIR", before);
        }
    }
}

/// <summary>The tests that set RAFT_CACHE_DIR run one at a time.</summary>
[CollectionDefinition(nameof(MiniLmCliCollection), DisableParallelization = true)]
public sealed class MiniLmCliCollection;
