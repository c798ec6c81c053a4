using System.Globalization;
using System.Text;
using System.Text.Json;
using Google.Protobuf.Reflection;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Machine;

/// <summary>
/// Where in a plan's text the JSON went wrong, for a message a person can act on: line and column,
/// and for a field the plan format does not have, the field that was probably meant ("depth" →
/// "depthMm"). Used only after Google.Protobuf's parser refused the text (its messages carry no
/// position); walks the text with System.Text.Json's reader against the Plan message's descriptors.
/// </summary>
internal static class PlanJsonLocator
{
    /// <summary>"line L, column C: …" for the first problem found; null when none is found (the parser's message then stands alone).</summary>
    public static string? Locate(string json) => Locate(json, Plan.Descriptor);

    /// <summary>The same for the JSON of any message, <paramref name="root"/> being the outermost object's (a treatment design's, say).</summary>
    public static string? Locate(string json, MessageDescriptor root)
    {
        var bytes = Encoding.UTF8.GetBytes(json);
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 64 });
        // The message each open object stands for (null: an object the format does not describe).
        var objects = new Stack<MessageDescriptor?>();
        FieldDescriptor? pendingField = null;
        var arrays = new Stack<FieldDescriptor?>();
        try
        {
            while (reader.Read())
            {
                var at = (int)reader.TokenStartIndex;
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject:
                        objects.Push(objects.Count == 0 ? root : ValueField(pendingField, arrays)?.MessageType);
                        pendingField = null;
                        break;
                    case JsonTokenType.EndObject:
                        objects.Pop();
                        break;
                    case JsonTokenType.StartArray:
                        arrays.Push(pendingField);
                        pendingField = null;
                        break;
                    case JsonTokenType.EndArray:
                        arrays.Pop();
                        break;
                    case JsonTokenType.PropertyName:
                        var name = reader.GetString()!;
                        if (objects.Peek() is { } message)
                        {
                            var field = message.Fields.InDeclarationOrder().FirstOrDefault(f => f.JsonName == name || f.Name == name);
                            if (field is null) return At(bytes, at, $"\"{name}\" is not a field of {message.Name}{Suggestion(name, message)}");
                            pendingField = field;
                        }
                        else
                        {
                            pendingField = null;
                        }
                        break;
                    default:
                        var target = ValueField(pendingField, arrays);
                        if (target is not null && Mismatch(target, reader) is { } problem)
                        {
                            return At(bytes, at, $"\"{target.JsonName}\" {problem}");
                        }
                        pendingField = null;
                        break;
                }
            }
        }
        catch (JsonException e)
        {
            var line = (e.LineNumber ?? 0) + 1;
            var column = (e.BytePositionInLine ?? 0) + 1;
            return string.Create(CultureInfo.InvariantCulture, $"line {line}, column {column}: {FirstSentence(e.Message)}");
        }
        return null;
    }

    /// <summary>The field a value belongs to: the property's, or inside an array the array's field.</summary>
    private static FieldDescriptor? ValueField(FieldDescriptor? property, Stack<FieldDescriptor?> arrays) =>
        property ?? (arrays.Count > 0 ? arrays.Peek() : null);

    private static string? Mismatch(FieldDescriptor field, Utf8JsonReader reader)
    {
        var token = reader.TokenType;
        if (token == JsonTokenType.Null) return null;
        return field.FieldType switch
        {
            FieldType.String when token != JsonTokenType.String => "must be a string",
            FieldType.Bool when token is not (JsonTokenType.True or JsonTokenType.False) => "must be true or false",
            FieldType.Double or FieldType.Float or FieldType.Int32 or FieldType.Int64 or FieldType.UInt32 or FieldType.UInt64
                or FieldType.SInt32 or FieldType.SInt64 or FieldType.Fixed32 or FieldType.Fixed64 or FieldType.SFixed32 or FieldType.SFixed64
                when token is not (JsonTokenType.Number or JsonTokenType.String) => "must be a number",
            FieldType.Double or FieldType.Float when token == JsonTokenType.String && !IsNumberText(reader.GetString()!) => "must be a number, not \"" + Short(reader.GetString()!) + "\"",
            FieldType.Message when !field.IsRepeated && token != JsonTokenType.StartObject => "must be an object",
            _ => null,
        };
    }

    private static bool IsNumberText(string text) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out _) || text is "NaN" or "Infinity" or "-Infinity";

    /// <summary>", did you mean "depthMm"?" for the nearest field name (a prefix, or within two edits); "" when none is near.</summary>
    private static string Suggestion(string name, MessageDescriptor message)
    {
        var names = message.Fields.InDeclarationOrder().Select(f => f.JsonName).ToList();
        var best = names.FirstOrDefault(n => n.StartsWith(name, StringComparison.OrdinalIgnoreCase) || name.StartsWith(n, StringComparison.OrdinalIgnoreCase))
            ?? names.Select(n => (Name: n, Distance: Distance(name.ToLowerInvariant(), n.ToLowerInvariant()))).Where(x => x.Distance <= 2).OrderBy(x => x.Distance).Select(x => x.Name).FirstOrDefault();
        return best is null ? $" (its fields: {string.Join(", ", names)})" : $"; did you mean \"{best}\"?";
    }

    /// <summary>Levenshtein distance (names are a few characters: the quadratic table is nothing).</summary>
    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (var j = 0; j <= b.Length; j++) d[0, j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }
        }
        return d[a.Length, b.Length];
    }

    private static string At(byte[] text, int offset, string message)
    {
        var line = 1;
        var lineStart = 0;
        for (var i = 0; i < offset && i < text.Length; i++)
        {
            if (text[i] == (byte)'\n')
            {
                line++;
                lineStart = i + 1;
            }
        }
        var column = Encoding.UTF8.GetCharCount(text, lineStart, Math.Max(0, offset - lineStart)) + 1;
        return string.Create(CultureInfo.InvariantCulture, $"line {line}, column {column}: {message}");
    }

    private static string FirstSentence(string message)
    {
        var cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return (cut > 0 ? message[..cut] : message).Trim().TrimEnd('.');
    }

    private static string Short(string text) => text.Length <= 20 ? text : text[..20] + "…";
}
