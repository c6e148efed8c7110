using Raft.Cli;
using Raft.Model;
using Raft.Model.Gguf;
using Raft.Teacher;

namespace Raft.Fuzz;

/// <summary>
/// The seed corpora (fuzz/corpus/&lt;target&gt;/): a few small valid files per target, written by the engine's own writers
/// (<c>Raft.Fuzz --seed DIR</c>), plus hand-made edge cases; libFuzzer mutates from these.
/// </summary>
public static class Seeds
{
    /// <summary>Writes every target's seeds into <paramref name="root"/>/&lt;target&gt;/ (replacing files of the same name).</summary>
    public static void Write(string root)
    {
        string Dir(string target) => Directory.CreateDirectory(Path.Combine(root, target)).FullName;
        string tmp = Directory.CreateTempSubdirectory("raft-fuzz-seed-").FullName;
        try
        {
            // safetensors: two F32 tensors; the tiny model in BF16 and F16 with metadata
            string st = Dir("safetensors");
            SafeTensorsWriter.Write(Path.Combine(st, "two-f32.safetensors"), [
                new Tensor("a.weight", [3, 4], [.. Enumerable.Range(0, 12).Select(i => i * 0.5f)]),
                new Tensor("b.bias", [5], [1f, -2f, 3f, -4f, 5f]),
            ]);
            var config = FuzzTargets.TinyConfig();
            var weights = FuzzTargets.TinyWeights(config);
            var few = weights.Tensors.Take(3).ToArray();
            SafeTensorsWriter.Write(Path.Combine(st, "bf16-meta.safetensors"), few, SafeTensorDType.BF16, new Dictionary<string, string> { ["format"] = "pt" });
            SafeTensorsWriter.Write(Path.Combine(st, "f16.safetensors"), few, SafeTensorDType.F16);

            // safetensors-index: the index of the target's two shards, and one with metadata
            string ix = Dir("safetensors-index");
            string Map(IEnumerable<(string Name, string Shard)> map) =>
                string.Join(",", map.Select(p => $"\"{p.Name}\":\"{p.Shard}\""));
            var shards = FuzzTargets.TinyShardMap(config);
            File.WriteAllText(Path.Combine(ix, "index.json"), $"{{\"weight_map\":{{{Map(shards)}}}}}");
            File.WriteAllText(Path.Combine(ix, "index-metadata.json"), $"{{\"metadata\":{{\"total_size\":4096}},\"weight_map\":{{{Map(shards.Reverse())}}}}}");

            // npy: [3, 4] and [1, 1] float32
            string npy = Dir("npy");
            NpyFile.WriteFloat32(Path.Combine(npy, "3x4.npy"), [.. Enumerable.Range(0, 12).Select(i => i * 0.25f)], 3, 4);
            NpyFile.WriteFloat32(Path.Combine(npy, "1x1.npy"), [1f], 1, 1);

            // jsonl: prompt/answer lines and a chat; eval-set: an evaluation set with answers, instructions and an extractor
            File.WriteAllText(Path.Combine(Dir("jsonl"), "prompt-answer.jsonl"),
                "{\"prompt\": \"Name a colour.\", \"answer\": \"Blue.\", \"id\": \"c1\"}\n{\"prompt\": \"2+3?\", \"answer\": \"5\", \"id\": 7}\n");
            File.WriteAllText(Path.Combine(Dir("jsonl"), "chat.jsonl"),
                "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi?\"}, " +
                "{\"role\": \"assistant\", \"content\": \"Hello.\"}]}\n");
            File.WriteAllText(Path.Combine(Dir("eval-set"), "eval.jsonl"), string.Join("\n",
                "{\"prompt\": \"Flip 13.\", \"answer\": \"31\"}",
                "{\"id\": \"b\", \"prompt\": \"Say hi.\", \"instructions\": [{\"kind\": \"lowercase\"}]}",
                "{\"prompt\": \"Add 2 and 2.\", \"answer\": \"4\", \"extractor\": \"last_number\"}") + "\n");

            // config: the tiny config, and one with RoPE scaling and a sliding window
            string cf = Dir("config");
            File.WriteAllText(Path.Combine(cf, "tiny.json"), config.ToJson());
            File.WriteAllText(Path.Combine(cf, "rope.json"),
                "{\"model_type\":\"qwen2\",\"hidden_size\":8,\"intermediate_size\":12,\"num_hidden_layers\":1,\"num_attention_heads\":2," +
                "\"num_key_value_heads\":1,\"vocab_size\":11,\"max_position_embeddings\":64,\"rms_norm_eps\":1e-6,\"rope_theta\":10000.0," +
                "\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":2.0},\"tie_word_embeddings\":false}");

            // tokenizer / tokenizer-config: the fixed pair each target pairs its input with
            File.WriteAllBytes(Path.Combine(Dir("tokenizer"), "bpe.json"), FuzzTargets.TokenizerJson);
            File.WriteAllBytes(Path.Combine(Dir("tokenizer-config"), "config.json"), FuzzTargets.TokenizerConfigJson);
            File.WriteAllText(Path.Combine(Dir("tokenizer-config"), "bos.json"),
                "{\"eos_token\":{\"content\":\"<|end|>\",\"special\":true},\"bos_token\":\"a\",\"add_bos_token\":true}");

            // teacher-cache: two entries at K = 2 over V = 11, and an empty cache
            string tc = Dir("teacher-cache");
            TeacherCacheFile.Write(Path.Combine(tc, "two.cache"), new TeacherCacheHeader(11, 2, 1f), [
                new TeacherTopK(1, 2, [3, 7], [0.75f, 0.25f]),
                new TeacherTopK(2, 2, [0, 10, 5, 4], [0.5f, 0.5f, 0.9f, 0.1f]),
            ]);
            TeacherCacheFile.Write(Path.Combine(tc, "empty.cache"), new TeacherCacheHeader(11, 1, 2f), []);

            // onnx: the tiny model exported by the engine
            string onnxOut = Path.Combine(tmp, "onnx");
            OnnxExporter.Export(config, weights, onnxOut);
            File.Copy(Path.Combine(onnxOut, OnnxExporter.ModelFile), Path.Combine(Dir("onnx"), "tiny.onnx"), overwrite: true);

            // gguf: metadata of every kind the reader takes, F32, F16 and BF16 tensors
            GgufWriter.Write(Path.Combine(Dir("gguf"), "small.gguf"), [
                new("general.architecture", GgufValue.Str("llama")),
                new("llama.block_count", GgufValue.U32(1)),
                new("llama.rope.freq_base", GgufValue.F32(10000f)),
                new("tokenizer.ggml.tokens", GgufValue.Strings(["a", "b", "ab"])),
                new("tokenizer.ggml.token_type", GgufValue.Int32s([1, 1, 1])),
                new("tokenizer.ggml.scores", GgufValue.Float32s([0f, -1f, -2f])),
                new("tokenizer.ggml.add_bos_token", GgufValue.Bool(false)),
                new("general.size", GgufValue.U64(3)),
            ], [
                new GgufTensor("token_embd.weight", [4, 3], GgmlType.F32, [.. Enumerable.Range(0, 12).Select(i => i * 0.5f)]),
                new GgufTensor("output_norm.weight", [4], GgmlType.F16, [1f, 0.5f, -2f, 3f]),
                new GgufTensor("blk.0.attn_q.weight", [2, 2], GgmlType.BF16, [1f, -1f, 0.25f, 8f]),
            ]);
        }
        finally
        {
            Directory.Delete(tmp, recursive: true);
        }
    }
}
