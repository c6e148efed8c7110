namespace Raft.Cli.Tests;

/// <summary><c>raft plot</c> on a real (tiny) RAFT run: the PNG decodes to its size and is not blank; bad inputs exit 2.</summary>
public class PlotCommandTests : CliHarness
{
    private static readonly string[] Tiny = ["--threads", "1", "--steps", "3", "--batch-size", "2", "--warmup-steps", "1"];

    [Fact]
    public void Plots_a_training_runs_metrics_beside_the_run()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string run = PathOf("run");
        var train = Raft(["train", "--model", ckpt, "--teacher", ckpt, "--data", data, "--out", run, .. Tiny]);
        Assert.True(train.Code == 0, train.ToString());

        var plot = Raft(["plot", run]);
        Assert.True(plot.Code == 0, plot.ToString());
        string png = PathOf("run-metrics.png");
        Assert.Equal(png, plot.Json.GetProperty("png").GetString());
        Assert.Equal(3, plot.Json.GetProperty("steps").GetInt32());
        var img = PngDecoder.Decode(File.ReadAllBytes(png));
        Assert.Equal(2 * 640, img.Width);
        Assert.Equal(3 * 400 + 70, img.Height);
        int white = img.Count(p => p is { R: 255, G: 255, B: 255 });
        Assert.InRange(white, 1, img.Width * img.Height * 97 / 100);
        Assert.True(img.Count(p => p.R < 90 && p.G < 90 && p.B < 90) > 500, "no text");
        Assert.False(File.Exists(Path.Combine(run, "run-metrics.png")));

        // never inside the run directory (an input); a folder without metrics.jsonl is refused by name
        var inside = Raft(["plot", run, "--out", Path.Combine(run, "m.png")]);
        Assert.True(inside.Code == 2, inside.ToString());
        Assert.Contains("is inside the RUN_DIR", inside.Stderr);
        Directory.CreateDirectory(PathOf("empty"));
        var none = Raft(["plot", PathOf("empty")]);
        Assert.True(none.Code == 2, none.ToString());
        Assert.Contains("has no metrics.jsonl", none.Stderr);
    }

    [Fact]
    public void A_malformed_metrics_line_is_reported_with_its_file_and_line()
    {
        Directory.CreateDirectory(PathOf("run"));
        File.WriteAllLines(PathOf("run/metrics.jsonl"), ["{\"step\": 1, \"loss\": 2.0}", "{\"step\": oops}"]);
        var r = Raft(["plot", PathOf("run"), "--out", PathOf("m.png")]);
        Assert.True(r.Code == 2, r.ToString());
        Assert.Contains("metrics.jsonl line 2", r.Stderr);
        Assert.False(File.Exists(PathOf("m.png")));
    }
}
