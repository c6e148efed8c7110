using Raft.Pipeline.Training;

namespace Raft.Cli.Tests;

/// <summary>
/// What a run killed mid-write leaves (#19, faults: a damaged or half-written file): a metrics line cut in the middle,
/// a staging checkpoint folder and a temporary file of an atomic write, a lock file that is not JSON, for sft and train. <c>--resume</c>
/// takes the lock over, removes exactly those leftovers (saying so), keeps every other file, and ends where an
/// uninterrupted run ends.
/// </summary>
public class HalfWrittenFilesTests : CliHarness
{
    [Theory]
    [InlineData("sft")]
    [InlineData("train")]
    public void Resume_after_a_kill_mid_write_removes_the_leftovers_and_ends_as_the_uninterrupted_run(string command)
    {
        var runs = new ResumableRun(command, PathOf);
        const int steps = 4;
        string whole = PathOf("whole"), run = PathOf("run");
        Assert.Equal(0, Raft(runs.Args(whole, steps)).Code);
        Assert.Equal(0, Raft(runs.Args(run, steps)).Code);

        // as if killed while writing step 4: no final/, no step-4, its staging half there, metrics cut mid-line
        string checkpoints = Path.Combine(run, Trainer.CheckpointsDir);
        Directory.Delete(Path.Combine(run, Trainer.FinalDir), recursive: true);
        if (Directory.Exists(Path.Combine(checkpoints, "step-0000004"))) Directory.Delete(Path.Combine(checkpoints, "step-0000004"), recursive: true);
        string staging = Path.Combine(checkpoints, ".step-0000004.staging-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(staging);
        File.WriteAllBytes(Path.Combine(staging, "model.safetensors"), [1, 2, 3]);
        string temp = Path.Combine(checkpoints, "step-0000003", $".trainer_state.json.{Guid.NewGuid():N}.tmp");
        File.WriteAllText(temp, "{\"step\": ");
        string metrics = Path.Combine(run, Trainer.MetricsFile);
        var lines = File.ReadAllLines(metrics);
        File.WriteAllText(metrics, string.Join("\n", lines[..3]) + "\n" + lines[3][..(lines[3].Length / 2)]);
        File.WriteAllText(Path.Combine(run, ".raft.lock"), "{\"pid\": 12");
        string mine = Path.Combine(run, "notes.txt"), mineHidden = Path.Combine(checkpoints, ".keep");
        File.WriteAllText(mine, "mine");
        File.WriteAllText(mineHidden, "mine");

        var r = runs.AssertResumesTo(whole, run, steps);
        Assert.Contains("damaged lock", r.Stderr);
        Assert.Contains("removed 2 half-written file(s) or folder(s) an interrupted run left", r.Stderr);
        Assert.False(Directory.Exists(staging));
        Assert.False(File.Exists(temp));
        Assert.True(File.Exists(mine) && File.Exists(mineHidden), "only the atomic writes' leftovers are removed");
        Assert.All(File.ReadAllLines(metrics), l => System.Text.Json.JsonDocument.Parse(l).Dispose());
    }
}
