using System.Globalization;
using System.Text;
using Google.Protobuf;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Machine;

/// <summary>
/// Reads plan files: canonical proto3 JSON of <see cref="Plan"/>, parsed by Google.Protobuf's
/// <see cref="JsonParser"/> (never by hand). Every failure becomes ONE plan-level violation with a clear
/// message (rules "file", "file-size", "empty", "json"); nothing here throws for bad input.
/// Parsing only checks the format; <see cref="PlanValidator"/> checks the content.
/// </summary>
public static class PlanLoader
{
    /// <summary>
    /// Nesting allowed for messages inside messages. A plan nests two deep (Plan → Dot); the limit stops
    /// a hostile file from recursing the parser into a stack overflow.
    /// </summary>
    internal const int RecursionLimit = 8;

    private static readonly JsonParser Parser = new(JsonParser.Settings.Default
        .WithIgnoreUnknownFields(false)
        .WithRecursionLimit(RecursionLimit));

    /// <summary>
    /// Parses plan JSON. The UTF-8 size is checked first against <paramref name="maxBytes"/> (rule
    /// "file-size"); then empty or whitespace-only text (rule "empty"); then the JSON itself (rule "json":
    /// malformed or truncated text, wrong value types, unknown fields, too deep nesting).
    /// </summary>
    public static PlanValidationResult Parse(string json, long maxBytes)
    {
        ArgumentNullException.ThrowIfNull(json);
        long sizeBytes = Encoding.UTF8.GetByteCount(json);
        if (sizeBytes > maxBytes)
        {
            return TooLarge(sizeBytes, maxBytes);
        }
        if (string.IsNullOrWhiteSpace(json))
        {
            return PlanValidationResult.Failed("empty", "the plan is empty: expected a JSON object such as {\"name\":\"crown\",\"units\":\"mm\",\"dots\":[...]}");
        }
        try
        {
            var plan = Parser.Parse<Plan>(json);
            return new PlanValidationResult(plan, [], 0);
        }
        catch (Exception e) when (e is InvalidProtocolBufferException or InvalidJsonException or FormatException or OverflowException or ArgumentException or InvalidOperationException)
        {
            var where = PlanJsonLocator.Locate(json);
            return PlanValidationResult.Failed("json", "the plan is not valid plan JSON: " + (where ?? OneLine(e.Message)));
        }
        catch (InsufficientExecutionStackException)
        {
            return PlanValidationResult.Failed("json", "the plan is not valid plan JSON: it is nested too deeply");
        }
    }

    /// <summary>
    /// Reads and parses a plan file. The file's length is checked BEFORE it is read (rule "file-size"), and
    /// reading stops after <paramref name="maxBytes"/> + 1 bytes in case the file grows meanwhile.
    /// A missing or unreadable file gives rule "file". Text must be UTF-8 (a BOM is allowed).
    /// </summary>
    public static PlanValidationResult ParseFile(string path, long maxBytes)
    {
        ArgumentNullException.ThrowIfNull(path);
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists)
            {
                return PlanValidationResult.Failed("file", $"plan file '{path}' does not exist");
            }
            if (info.Length > maxBytes)
            {
                return TooLarge(info.Length, maxBytes);
            }
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            // Read at most maxBytes + 1: the length was checked, but the file may have grown since.
            using var content = new MemoryStream(checked((int)Math.Min(info.Length, maxBytes)));
            var chunk = new byte[64 * 1024];
            int read;
            while (content.Length <= maxBytes && (read = stream.Read(chunk, 0, (int)Math.Min(chunk.Length, maxBytes + 1 - content.Length))) > 0)
            {
                content.Write(chunk, 0, read);
            }
            if (content.Length > maxBytes)
            {
                return TooLarge(content.Length, maxBytes);
            }
            string text;
            try
            {
                text = new UTF8Encoding(false, true).GetString(content.GetBuffer(), 0, (int)content.Length);
            }
            catch (DecoderFallbackException)
            {
                return PlanValidationResult.Failed("json", $"plan file '{path}' is not UTF-8 text");
            }
            if (text.Length > 0 && text[0] == '\uFEFF')
            {
                text = text[1..];
            }
            return Parse(text, maxBytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException or System.Security.SecurityException or OverflowException)
        {
            return PlanValidationResult.Failed("file", $"plan file '{path}' cannot be read: {OneLine(e.Message)}");
        }
    }

    private static PlanValidationResult TooLarge(long sizeBytes, long maxBytes) =>
        PlanValidationResult.Failed("file-size", string.Create(CultureInfo.InvariantCulture,
            $"the plan is {sizeBytes} bytes; the machine accepts plans of at most {maxBytes} bytes"));

    private static string OneLine(string message)
    {
        var line = message.ReplaceLineEndings(" ").Trim();
        return line.Length <= 300 ? line : line[..300] + "…";
    }
}
