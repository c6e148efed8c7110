using System.CommandLine;
using Raft.Cli.Commands;

namespace Raft.Cli;

/// <summary>The root <c>raft</c> command. Each subcommand lives in its own file under Commands/.</summary>
internal static class RaftCommand
{
    public static RootCommand Create()
    {
        var root = new RootCommand(
            "raft: RAFT domain fine-tuning without forgetting (data refinement and answer-conditioned " +
            "on-policy distillation), headless. Exit codes: 0 success, 1 unexpected failure, 2 bad options or input.");
        root.Subcommands.Add(DemoCommand.Create());
        root.Subcommands.Add(RefineCommand.Create());
        root.Subcommands.Add(TrainCommand.Create(Raft.Pipeline.Training.TrainMethod.Raft));
        root.Subcommands.Add(TrainCommand.Create(Raft.Pipeline.Training.TrainMethod.Sft));
        root.Subcommands.Add(EvalCommand.Create());
        root.Subcommands.Add(PlotCommand.Create());
        root.Subcommands.Add(PretrainCommand.Create());
        root.Subcommands.Add(ExportOnnxCommand.Create());
        root.Subcommands.Add(ExportGgufCommand.Create());
        root.Subcommands.Add(MergeLoraCommand.Create());
        root.Subcommands.Add(KdCommand.Create());
        root.Subcommands.Add(ChatTemplateCommand.Create());
        return root;
    }
}
