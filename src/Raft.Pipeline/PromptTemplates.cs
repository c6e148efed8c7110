namespace Raft.Pipeline;

/// <summary>
/// The two documented prompt templates RAFT puts in front of the teacher (the original model). Both are plain user
/// turns, rendered afterwards by the model's chat template, so that any instruction-tuned model can read them.
/// <list type="bullet">
/// <item><b>Rewrite</b> (stage 1, self-conditioned rewriting):
/// <c>Rewrite the reference answer in your own style.\nQuestion: {prompt}\nReference: {reference}</c>.</item>
/// <item><b>Answer-conditioned</b> (stage 2, teacher context): <c>{prompt}\nReference answer: {fused answer}</c>;
/// the student's rollout follows as the assistant turn, so the teacher reads the fused answer before every rollout
/// token it scores.</item>
/// </list>
/// </summary>
public static class PromptTemplates
{
    /// <summary>The first line of the rewrite template.</summary>
    public const string RewriteInstruction = "Rewrite the reference answer in your own style.";

    /// <summary>The user turn that asks the teacher to rewrite <paramref name="reference"/> for <paramref name="prompt"/>.</summary>
    public static string Rewrite(string prompt, string reference) =>
        $"{RewriteInstruction}\nQuestion: {prompt}\nReference: {reference}";

    /// <summary>The teacher's user turn in stage 2: the prompt followed by the fused answer.</summary>
    public static string AnswerConditioned(string prompt, string fusedAnswer) =>
        $"{prompt}\nReference answer: {fusedAnswer}";
}
