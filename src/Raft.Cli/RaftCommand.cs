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
        root.Subcommands.Add(KdCommand.Create());
        // Later: refine, train, sft, eval, demo.
        return root;
    }
}
