using System.CommandLine;
using System.Text.Json;
using Raft.Model;
using Raft.Model.Tokenization;

namespace Raft.Cli.Commands;

/// <summary>
/// <c>raft chat-template</c>: renders a conversation through a model folder's chat template and prints what the model is
/// trained on: <c>{"text", "ids", "assistant_mask"}</c>.
/// </summary>
internal static class ChatTemplateCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "The model folder: its tokenizer files and chat template (chat_template.jinja, chat_template.json or tokenizer_config.json's chat_template; without one, the built-in fallback).", Required = true, HelpName = "DIR" };
        var messages = new Option<string>("--messages") { Description = "The conversation: a JSON array of {\"role\", \"content\"} (or {\"messages\": [...]}).", Required = true, HelpName = "FILE" };
        var generation = new Option<bool>("--add-generation-prompt") { Description = "End with the header of a new assistant turn (what rollouts continue)." };
        var command = new Command("chat-template", "Prints one JSON line {\"text\", \"ids\", \"assistant_mask\"}: the conversation as the model's chat template renders it (byte for byte as Hugging Face does), its token ids, and 1 for each token of an assistant turn's content and end-of-turn token (the SFT loss mask).");
        foreach (Option o in (Option[])[model, messages, generation]) command.Options.Add(o);
        command.SetAction(parse =>
        {
            var stderr = parse.InvocationConfiguration.Error;
            string dir = parse.GetValue(model)!, path = parse.GetValue(messages)!;
            CliChecks.CheckInputDirectory("--model", dir);
            CliChecks.CheckInputFile("--messages", path);
            var conversation = ReadMessages(path);
            string configPath = Path.Combine(dir, Checkpoint.ConfigFile);
            string? modelType = File.Exists(configPath) ? ModelConfig.Load(configPath).ModelType : null;
            var tokenizer = TokenizerLoader.ForModel(dir, modelType);
            ChatTemplate template;
            try { template = ChatTemplate.ForModel(dir, tokenizer, modelType); }
            catch (NotSupportedException e) { throw new UsageException($"--model {dir}: {e.Message}"); }
            stderr.WriteLine($"chat template: {template.Origin}");
            bool gen = parse.GetValue(generation);
            string text = template.Render(conversation, gen);
            ChatEncoding enc;
            try { enc = template.Encode(tokenizer, conversation, gen); }
            catch (ArgumentException e) { throw new UsageException($"--messages {path}: {e.Message}"); }
            using var buffer = new MemoryStream();
            using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            {
                w.WriteStartObject();
                w.WriteString("text", text);
                w.WriteStartArray("ids");
                foreach (int id in enc.Ids) w.WriteNumberValue(id);
                w.WriteEndArray();
                w.WriteStartArray("assistant_mask");
                foreach (bool m in enc.AssistantMask) w.WriteNumberValue(m ? 1 : 0);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            parse.InvocationConfiguration.Output.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>The messages of <paramref name="path"/>; anything but role and content strings is refused by name.</summary>
    internal static List<ChatMessage> ReadMessages(string path)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(path)); }
        catch (JsonException e) { throw new UsageException($"--messages {path}: not valid JSON ({e.Message})."); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind == JsonValueKind.Object)
            {
                foreach (var p in root.EnumerateObject())
                    if (p.Name != "messages") throw new UsageException($"--messages {path}: unknown key \"{p.Name}\" (expected \"messages\").");
                if (!root.TryGetProperty("messages", out root)) throw new UsageException($"--messages {path}: no \"messages\" array.");
            }
            if (root.ValueKind != JsonValueKind.Array) throw new UsageException($"--messages {path}: expected an array of {{\"role\", \"content\"}}, got {root.ValueKind}.");
            var list = new List<ChatMessage>();
            int i = 0;
            foreach (var m in root.EnumerateArray())
            {
                if (m.ValueKind != JsonValueKind.Object) throw new UsageException($"--messages {path}: messages[{i}] is {m.ValueKind}, expected an object.");
                foreach (var p in m.EnumerateObject())
                    if (p.Name is not ("role" or "content"))
                        throw new UsageException($"--messages {path}: messages[{i}] has key \"{p.Name}\", which is not supported (only \"role\" and \"content\" strings).");
                if (!m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
                    throw new UsageException($"--messages {path}: messages[{i}].role must be a string.");
                if (!m.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                    throw new UsageException($"--messages {path}: messages[{i}].content must be a string.");
                list.Add(new ChatMessage(role.GetString()!, content.GetString()!));
                i++;
            }
            return list;
        }
    }
}
