using System.Security.Cryptography;
using System.Text;
using Google.Protobuf;
using SmpRobot.Contracts.V1;
using SmpRobot.Machine;

namespace SmpRobot.Treatment.Design;

/// <summary>A design file read from disk: the message (null when it did not parse), its folder (mesh paths are relative to it) and the SHA-256 of its text.</summary>
public sealed record LoadedDesign(TreatmentDesign? Design, string Directory, string Sha256, IReadOnlyList<DesignViolation> Violations);

/// <summary>
/// Reads design files: canonical proto3 JSON of <see cref="TreatmentDesign"/>, parsed by Google.Protobuf's
/// JsonParser (unknown fields are errors, nesting is bounded) like plans. Every failure is one violation
/// ("file", "file-size", "json" with the line and column where it went wrong); nothing here throws for bad input.
/// </summary>
public static class DesignLoader
{
    /// <summary>Largest design file read, bytes (a design with hand-drawn SVG outlines is tens of KB).</summary>
    public const long MaxBytes = 4L * 1024 * 1024;

    private static readonly System.Text.Json.JsonSerializerOptions Indented = new() { WriteIndented = true };

    private static readonly JsonParser Parser = new(JsonParser.Settings.Default.WithIgnoreUnknownFields(false).WithRecursionLimit(12));

    /// <summary>Reads and parses <paramref name="path"/>.</summary>
    public static LoadedDesign Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var directory = Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) return Failed(directory, "file", $"design file '{path}' does not exist");
            if (info.Length > MaxBytes) return Failed(directory, "file-size", $"design file '{path}' is {info.Length} bytes; at most {MaxBytes} are read");
            var bytes = File.ReadAllBytes(path);
            string text;
            try
            {
                text = new UTF8Encoding(false, true).GetString(bytes);
            }
            catch (DecoderFallbackException)
            {
                return Failed(directory, "json", $"design file '{path}' is not UTF-8 text");
            }
            return Parse(text.TrimStart('\uFEFF'), directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return Failed(directory, "file", $"design file '{path}' cannot be read: {e.Message}");
        }
    }

    /// <summary>Parses design JSON whose mesh paths are relative to <paramref name="directory"/>.</summary>
    public static LoadedDesign Parse(string json, string directory)
    {
        ArgumentNullException.ThrowIfNull(json);
        var sha = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(json)));
        if (string.IsNullOrWhiteSpace(json)) return Failed(directory, "empty", "the design is empty: expected a JSON object such as {\"name\":\"…\",\"units\":\"mm\",\"head\":{…},\"zones\":[…]}");
        try
        {
            return new LoadedDesign(Parser.Parse<TreatmentDesign>(json), directory, sha, []);
        }
        catch (Exception e) when (e is InvalidProtocolBufferException or InvalidJsonException or FormatException or OverflowException or ArgumentException or InvalidOperationException)
        {
            var where = PlanJsonLocator.Locate(json, TreatmentDesign.Descriptor);
            return Failed(directory, "json", "the design is not valid design JSON: " + (where ?? e.Message.ReplaceLineEndings(" ")), sha);
        }
        catch (InsufficientExecutionStackException)
        {
            return Failed(directory, "json", "the design is not valid design JSON: it is nested too deeply", sha);
        }
    }

    /// <summary>Canonical JSON of a design, one field per line, as <c>smp design new</c> writes it.</summary>
    public static string Format(TreatmentDesign design) =>
        JsonPretty(new JsonFormatter(JsonFormatter.Settings.Default.WithFormatEnumsAsIntegers(false)).Format(design));

    private static string JsonPretty(string json)
    {
        using var document = System.Text.Json.JsonDocument.Parse(json);
        return System.Text.Json.JsonSerializer.Serialize(document.RootElement, Indented) + "\n";
    }

    private static LoadedDesign Failed(string directory, string rule, string message, string sha = "") =>
        new(null, directory, sha, [new DesignViolation("design", rule, message)]);
}
