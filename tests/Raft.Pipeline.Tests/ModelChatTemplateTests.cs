using Raft.Model;
using Raft.Model.Tokenization;
using Raft.Pipeline.Training;

namespace Raft.Pipeline.Tests;

/// <summary>
/// A checkpoint folder with its own chat template: the student is loaded with it (and says so), and the training data —
/// rollout prompts, the SFT conversation with its mask, and the answer-conditioned teacher context — is rendered through it.
/// </summary>
public class ModelChatTemplateTests
{
    // The byte model's format with a house system turn the built-in template does not write.
    private const string House = "<|bos|><|system|>House rules.<|end|>";
    private const string Template =
        House + "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";

    private static string Folder(TempDirectory tmp)
    {
        var model = TinyModels.Model();
        Checkpoint.Save(tmp.Path, model.Config, model.Parameters);
        File.WriteAllText(Path.Combine(tmp.Path, "chat_template.jinja"), Template);
        return tmp.Path;
    }

    [Fact]
    public void LoadStudent_UsesAndNamesTheFoldersTemplate()
    {
        using var tmp = new TempDirectory();
        string dir = Folder(tmp);
        var log = new List<string>();
        var student = ModelStore.LoadStudent(dir, threads: 1, log: log.Add);
        Assert.True(student.Template.IsModelTemplate);
        Assert.Equal([$"chat template: chat_template.jinja of {dir}"], log);
        File.Delete(Path.Combine(dir, "chat_template.jinja"));
        log.Clear();
        student = ModelStore.LoadStudent(dir, threads: 1, log: log.Add);
        Assert.False(student.Template.IsModelTemplate);
        Assert.Equal(["chat template: fallback built-in raft"], log);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TrainData_RendersPromptsAnswersAndTeacherContextThroughIt(bool answerConditioned)
    {
        using var tmp = new TempDirectory();
        var student = ModelStore.LoadStudent(Folder(tmp), threads: 1);
        var tok = student.Tokenizer;
        var options = TinyModels.Raft(1) with { AnswerConditioned = answerConditioned };
        var data = TrainData.Encode(TinyModels.Data, tok, student.Template, options, maxPositions: 512);
        for (int i = 0; i < TinyModels.Data.Length; i++)
        {
            var (prompt, answer) = (TinyModels.Data[i].Prompt, TinyModels.Data[i].Answer);
            var e = data.Examples[i];
            Assert.Equal(tok.Encode($"{House}<|user|>{prompt}<|end|><|assistant|>"), e.Prompt);
            Assert.Equal(tok.Encode($"{House}<|user|>{prompt}<|end|><|assistant|>{answer}<|end|>"), e.Full);
            Assert.Equal(answer + "<|end|>", tok.Decode(e.Full.Where((_, j) => e.Mask[j]).ToArray()));
            string context = answerConditioned ? PromptTemplates.AnswerConditioned(prompt, answer) : prompt;
            Assert.Equal(tok.Encode($"{House}<|user|>{context}<|end|><|assistant|>"), e.TeacherContext);
        }
        Assert.Equal(ChatTemplate.Raft.StopIds(tok), data.StopIds);   // the turn's end token found by a probe render, then EOS
        Assert.Equal(tok.SpecialId("<|end|>"), data.StopIds[0]);
    }
}
