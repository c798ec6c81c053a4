using System.Globalization;

namespace SmpRobot.Operator.Cli;

/// <summary>Plan files on disk: size-checked reading and the demo's <c>--dots</c> truncation.</summary>
internal static class PlanFile
{
    /// <summary>Largest plan file the CLI reads (8 MiB); bigger files are refused without reading them.</summary>
    public const long MaxBytes = 8L * 1024 * 1024;

    /// <summary>
    /// Reads a plan file's text. Missing, unreadable or larger than <see cref="MaxBytes"/> → <see cref="CliException"/>
    /// with exit code 2; the size is checked from the file system before any byte is read.
    /// </summary>
    public static string ReadChecked(string path)
    {
        FileInfo info;
        try
        {
            info = new FileInfo(path);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new CliException(ExitCodes.Usage, $"bad plan file path '{path}': {e.Message}");
        }
        if (!info.Exists) throw new CliException(ExitCodes.Usage, $"plan file not found: {path}");
        if (info.Length > MaxBytes)
        {
            throw new CliException(ExitCodes.Usage, string.Format(CultureInfo.InvariantCulture,
                "plan file {0} is {1:0.0} MiB; the limit is {2} MiB", path, info.Length / 1048576.0, MaxBytes / 1048576));
        }
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            // The file may have grown since the check: never read more than was checked.
            var buffer = new byte[info.Length + 1];
            var total = 0;
            int n;
            while (total < buffer.Length && (n = stream.Read(buffer, total, buffer.Length - total)) > 0) total += n;
            if (total > info.Length) throw new CliException(ExitCodes.Usage, $"plan file {path} changed while it was read");
            return new System.Text.UTF8Encoding(false, true).GetString(buffer, 0, total);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.DecoderFallbackException)
        {
            throw new CliException(ExitCodes.Usage, $"cannot read plan file {path}: {e.Message}");
        }
    }

    /// <summary>Number of dots in a plan's JSON text; bad JSON → exit code 2.</summary>
    public static int CountDots(string planJson, string source) => Parse(planJson, source).Dots.Count;

    /// <summary>
    /// The plan with only its first <paramref name="count"/> dots, renamed to say so, as canonical JSON.
    /// <paramref name="count"/> below 1 or above the plan's dot count → exit code 2.
    /// </summary>
    public static string KeepFirstDots(string planJson, int count, string source)
    {
        var plan = Parse(planJson, source);
        if (count < 1) throw new CliException(ExitCodes.Usage, $"--dots must be at least 1 (got {count})");
        if (count > plan.Dots.Count)
        {
            throw new CliException(ExitCodes.Usage, $"--dots {count} is more than the {plan.Dots.Count} dots of plan {source}");
        }
        if (count < plan.Dots.Count)
        {
            plan.Name = $"{plan.Name} (first {count} of {plan.Dots.Count} dots)";
            while (plan.Dots.Count > count) plan.Dots.RemoveAt(plan.Dots.Count - 1);
        }
        return Google.Protobuf.JsonFormatter.Default.Format(plan);
    }

    /// <summary>The plan file format is the canonical proto3 JSON of Plan: parsed by Google.Protobuf, never by hand.</summary>
    private static SmpRobot.Contracts.V1.Plan Parse(string planJson, string source)
    {
        try
        {
            return SmpRobot.Contracts.V1.Plan.Parser.ParseJson(planJson);
        }
        catch (Exception e) when (e is Google.Protobuf.InvalidProtocolBufferException or Google.Protobuf.InvalidJsonException or FormatException)
        {
            throw new CliException(ExitCodes.Usage, $"plan {source} is not a valid plan file: {e.Message}");
        }
    }
}
