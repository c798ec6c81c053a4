using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli;

/// <summary>
/// The <c>--json</c> shapes. Every command prints exactly one JSON object (camelCase) on stdout; messages go to stderr.
/// </summary>
internal static class JsonOutput
{
    private static readonly JsonWriterOptions WriterOptions = new() { Indented = false };

    private static readonly JsonFormatter ProtoFormatter = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true));

    /// <summary>
    /// Session result of <c>run</c>, <c>demo</c>, <c>watch</c>, <c>session show</c>: sessionId, planName, profileName,
    /// state ("COMPLETED"), reason, dots {total, placed, skipped, pending, inDoubt, commanded}, elapsedSeconds,
    /// kinematicSeconds, kinematicRatio (elapsed / kinematic, null when unknown), dotsPerSecond, etaSeconds,
    /// inDoubtDots [ids], tracking {source, tracking, holds, retracts, lastHoldReason, holding, holdReason} (null from an old controller), exitCode.
    /// </summary>
    public static JsonObject Session(Session session, int exitCode)
    {
        var dots = session.Dots ?? new DotCounts();
        var inDoubt = new JsonArray();
        foreach (var d in session.InDoubt) inDoubt.Add(d.DotId);
        return new JsonObject
        {
            ["sessionId"] = session.Id,
            ["planName"] = session.PlanName,
            ["profileName"] = session.ProfileName,
            ["state"] = Formatting.StateName(session.State),
            ["reason"] = session.Reason,
            ["dots"] = new JsonObject
            {
                ["total"] = dots.Total,
                ["placed"] = dots.Placed,
                ["skipped"] = dots.Skipped,
                ["pending"] = dots.Pending,
                ["inDoubt"] = dots.InDoubt,
                ["commanded"] = dots.Commanded,
            },
            ["elapsedSeconds"] = Finite(session.ElapsedSeconds),
            ["kinematicSeconds"] = Finite(session.KinematicSeconds),
            ["kinematicRatio"] = session.KinematicSeconds > 0 ? Finite(session.ElapsedSeconds / session.KinematicSeconds) : null,
            ["dotsPerSecond"] = Finite(session.DotsPerSecond),
            ["etaSeconds"] = Finite(session.EtaSeconds),
            ["inDoubtDots"] = inDoubt,
            ["tracking"] = session.Tracking is { } t
                ? new JsonObject
                {
                    ["source"] = t.Source,
                    ["tracking"] = t.Tracking,
                    ["holds"] = t.Holds,
                    ["retracts"] = t.Retracts,
                    ["lastHoldReason"] = t.LastHoldReason,
                    ["holding"] = t.Holding,
                    ["holdReason"] = t.HoldReason,
                }
                : null,
            ["exitCode"] = exitCode,
        };
    }

    /// <summary>Error object: {"error": message, "exitCode": N, ...details}.</summary>
    public static JsonObject Error(string message, int exitCode, JsonObject? details = null)
    {
        var obj = new JsonObject { ["error"] = message, ["exitCode"] = exitCode };
        if (details is not null)
        {
            foreach (var (key, value) in details.ToList())
            {
                details.Remove(key);
                obj[key] = value;
            }
        }
        return obj;
    }

    /// <summary>Violations as {"violations": [{dotId, rule, message}], "totalViolations": N}.</summary>
    public static JsonObject Violations(PlanViolations violations)
    {
        var list = new JsonArray();
        foreach (var v in violations.Violations)
        {
            list.Add(new JsonObject { ["dotId"] = v.DotId, ["rule"] = v.Rule, ["message"] = v.Message });
        }
        return new JsonObject
        {
            ["violations"] = list,
            ["totalViolations"] = Math.Max(violations.Total, violations.Violations.Count),
        };
    }

    /// <summary>A protobuf message in its proto3 JSON form (lowerCamelCase, default values included).</summary>
    public static JsonObject Message(IMessage message) =>
        JsonNode.Parse(ProtoFormatter.Format(message))?.AsObject() ?? new JsonObject();

    /// <summary>Writes the single JSON object and a newline.</summary>
    public static void Write(TextWriter stdout, JsonObject value)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            value.WriteTo(writer);
        }
        stdout.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
        stdout.Flush();
    }

    private static double? Finite(double value) => double.IsFinite(value) ? value : null;
}
