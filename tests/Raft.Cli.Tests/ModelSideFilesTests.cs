using Raft.Model.Tokenization;
using Raft.Pipeline.Training;

namespace Raft.Cli.Tests;

/// <summary>
/// A checkpoint the engine writes (every checkpoint and final/) and an ONNX export of one carry the model folder's
/// tokenizer, chat template and generation config byte for byte, and nothing else of it; so a trained folder loads,
/// evaluates and exports on its own (before, eval of a real model's final/ failed: "holds no tokenizer").
/// </summary>
public class ModelSideFilesTests : CliHarness
{
    private static readonly (string Name, string Text)[] SideFiles =
    [
        ("generation_config.json", "{\"do_sample\": true, \"temperature\": 0.7, \"top_p\": 0.8}\n"),
        ("special_tokens_map.json", "{\"eos_token\": \"<|im_end|>\"}\n"),
        // A real template (it is read and used by sft): assistant turns marked with generation blocks; a non-ASCII byte to
        // catch a re-encoding copy.
        ("chat_template.jinja", "{# ü #}{% for m in messages %}<|{{ m.role }}|>{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}"
            + "{% else %}{{ m.content }}{% endif %}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"),
    ];

    [Theory]
    [InlineData("tokenizer.json", true)]
    [InlineData("tokenizer_config.json", true)]
    [InlineData("tokenizer.model", true)]
    [InlineData("vocab.json", true)]
    [InlineData("merges.txt", true)]
    [InlineData("qwen.tiktoken", true)]
    [InlineData("added_tokens.json", true)]
    [InlineData("chat_template.jinja", true)]
    [InlineData("chat_template.json", true)]
    [InlineData("generation_config.json", true)]
    [InlineData("config.json", false)]
    [InlineData("model.safetensors", false)]
    [InlineData("optimizer.safetensors", false)]
    [InlineData("trainer_state.json", false)]
    [InlineData("README.md", false)]
    public void Which_files_travel(string name, bool travels) => Assert.Equal(travels, ModelSideFiles.Travels(name));

    [Fact]
    public void Copying_a_folder_onto_itself_is_refused()
    {
        string dir = PathOf("m");
        Directory.CreateDirectory(dir);
        var e = Assert.Throws<ArgumentException>(() => ModelSideFiles.Copy(dir, dir + Path.DirectorySeparatorChar));
        Assert.Contains(dir, e.Message);
    }

    [Fact]
    public void Sft_checkpoints_and_the_onnx_export_carry_the_model_files_byte_for_byte()
    {
        string ckpt = PipelineFixtures.Checkpoint(PathOf("base"));
        foreach (var (name, text) in SideFiles) File.WriteAllText(Path.Combine(ckpt, name), text);
        File.WriteAllText(Path.Combine(ckpt, "notes.txt"), "not a model file");
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        string run = PathOf("run");

        var sft = Raft("sft", "--model", ckpt, "--data", data, "--out", run, "--threads", "1", "--steps", "2", "--batch-size", "2",
            "--warmup-steps", "1", "--checkpoint-every", "1");
        Assert.True(sft.Code == 0, sft.ToString());
        string final = Path.Combine(run, Trainer.FinalDir), step1 = Path.Combine(run, Trainer.CheckpointsDir, "step-0000001");
        string onnx = PathOf("onnx");
        var export = Raft("export-onnx", "--model", final, "--out", onnx);
        Assert.True(export.Code == 0, export.ToString());

        foreach (string dir in new[] { step1, final, onnx })
        {
            foreach (var (name, text) in SideFiles)
                Assert.Equal(File.ReadAllBytes(Path.Combine(ckpt, name)), File.ReadAllBytes(Path.Combine(dir, name)));
            Assert.False(File.Exists(Path.Combine(dir, "notes.txt")), $"{dir} holds a file that is not the model's");
            Assert.Empty(Directory.GetFiles(dir, "*.part"));
        }
    }
}
