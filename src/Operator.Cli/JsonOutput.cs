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
    // Plain JSON for people's tools: "+" stays "+", not "\u002B" (the output is never embedded in HTML).
    private static readonly JsonWriterOptions WriterOptions = new() { Indented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

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

    /// <summary>
    /// A protobuf message as plain JSON: lowerCamelCase names, every field (default values included),
    /// 64-bit integers as numbers (proto3 JSON writes them as strings), enum values without their
    /// type's prefix in lower case ("gantry", not "CALIBRATION_KIND_GANTRY"), timestamps as RFC 3339
    /// strings, bytes as base64, a field that is not set (a message, an optional value: not applicable) and
    /// non-finite numbers as null.
    /// </summary>
    /// <remarks>Written by hand over the message descriptors: proto3 JSON (Google.Protobuf's formatter) is the wire-compatible form, not the plain one tools expect.</remarks>
    public static JsonObject Message(IMessage message)
    {
        var obj = new JsonObject();
        foreach (var field in message.Descriptor.Fields.InFieldNumberOrder())
        {
            var value = field.Accessor.GetValue(message);
            obj[field.JsonName] = field.IsMap ? Map(field, (System.Collections.IDictionary)value)
                : field.IsRepeated ? Repeated(field, (System.Collections.IList)value)
                : field.HasPresence && !field.Accessor.HasValue(message) ? null
                : Value(field, value);
        }
        return obj;
    }

    private static JsonArray Repeated(Google.Protobuf.Reflection.FieldDescriptor field, System.Collections.IList values)
    {
        var array = new JsonArray();
        foreach (var v in values) array.Add(Value(field, v));
        return array;
    }

    private static JsonObject Map(Google.Protobuf.Reflection.FieldDescriptor field, System.Collections.IDictionary values)
    {
        var valueField = field.MessageType.FindFieldByNumber(2);
        var obj = new JsonObject();
        foreach (System.Collections.DictionaryEntry e in values) obj[Convert.ToString(e.Key, System.Globalization.CultureInfo.InvariantCulture)!] = Value(valueField, e.Value);
        return obj;
    }

    private static JsonNode? Value(Google.Protobuf.Reflection.FieldDescriptor field, object? value) => field.FieldType switch
    {
        Google.Protobuf.Reflection.FieldType.Message when value is Google.Protobuf.WellKnownTypes.Timestamp t => t.ToDateTimeOffset().ToString("O", System.Globalization.CultureInfo.InvariantCulture),
        Google.Protobuf.Reflection.FieldType.Message when value is IMessage m => Message(m),
        Google.Protobuf.Reflection.FieldType.Enum => EnumName(field.EnumType, Convert.ToInt32(value, System.Globalization.CultureInfo.InvariantCulture)),
        Google.Protobuf.Reflection.FieldType.Bytes => Convert.ToBase64String(((ByteString)value!).ToByteArray()),
        Google.Protobuf.Reflection.FieldType.Double => Finite((double)value!),
        Google.Protobuf.Reflection.FieldType.Float => Finite((float)value!),
        _ => JsonValue.Create(value),
    };

    /// <summary>"CALIBRATION_KIND_GANTRY" of CalibrationKind → "gantry"; an unknown number stays a number.</summary>
    private static JsonNode? EnumName(Google.Protobuf.Reflection.EnumDescriptor type, int number)
    {
        if (type.FindValueByNumber(number) is not { } value) return number;
        var prefix = string.Concat(type.Name.Select((c, i) => i > 0 && char.IsUpper(c) ? "_" + c : c.ToString())).ToUpperInvariant() + "_";
        var name = value.Name.StartsWith(prefix, StringComparison.Ordinal) ? value.Name[prefix.Length..] : value.Name;
        return name.ToLowerInvariant();
    }

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
