using Grpc.Core;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli;

/// <summary>Turns an INVALID_ARGUMENT plan reply into "dot ID  rule  message" lines and an exit-2 error.</summary>
internal static class PlanViolationReport
{
    /// <summary>Trailer carrying the binary <see cref="PlanViolations"/>.</summary>
    public const string TrailerKey = "plan-violations-bin";

    /// <summary>The violations from the trailer; null when absent or unreadable.</summary>
    public static PlanViolations? FromTrailers(Metadata? trailers)
    {
        var entry = trailers?.Get(TrailerKey);
        if (entry is null || !entry.IsBinary) return null;
        try
        {
            return PlanViolations.Parser.ParseFrom(entry.ValueBytes);
        }
        catch (Google.Protobuf.InvalidProtocolBufferException)
        {
            return null;
        }
    }

    /// <summary>One line per violation; plan-level violations show "plan" instead of "dot ID".</summary>
    public static IEnumerable<string> Lines(PlanViolations violations) =>
        violations.Violations.Select(v => (string.IsNullOrEmpty(v.DotId) ? "plan" : "dot " + v.DotId) + "  " + v.Rule + "  " + v.Message);

    /// <summary>"N violations", saying how many are shown when the controller bounded the list.</summary>
    public static string CountLine(PlanViolations violations)
    {
        var total = Math.Max(violations.Total, violations.Violations.Count);
        var noun = total == 1 ? "violation" : "violations";
        return total > violations.Violations.Count
            ? $"{total} {noun} (first {violations.Violations.Count} shown)"
            : $"{total} {noun}";
    }

    /// <summary>
    /// Prints the violations (stdout, or stderr with --json) and returns the exit-2 error whose JSON carries
    /// "violations" and "totalViolations". Without the trailer the status detail is printed instead.
    /// </summary>
    /// <summary>The same report for violations found here (offline, with a profile file).</summary>
    public static CliException Report(CommandContext ctx, SmpRobot.Machine.PlanValidationResult result, string source)
    {
        var violations = new PlanViolations { Total = result.TotalViolations };
        violations.Violations.Add(result.Violations.Select(v => new PlanViolation { DotId = v.DotId, Rule = v.Rule, Message = v.Message }));
        var output = ctx.Json ? ctx.Stderr : ctx.Stdout;
        foreach (var line in Lines(violations)) output.WriteLine(line);
        var count = CountLine(violations);
        output.WriteLine(count);
        return new CliException(ExitCodes.Usage, $"plan {source} is invalid: {count}", JsonOutput.Violations(violations)) { AlreadyReported = true };
    }

    public static CliException Report(CommandContext ctx, RpcException e, string source)
    {
        var output = ctx.Json ? ctx.Stderr : ctx.Stdout;
        var violations = FromTrailers(e.Trailers);
        if (violations is null)
        {
            output.WriteLine(e.Status.Detail);
            return new CliException(ExitCodes.Usage, $"plan {source} is invalid: {e.Status.Detail}",
                new System.Text.Json.Nodes.JsonObject { ["violations"] = new System.Text.Json.Nodes.JsonArray(), ["detail"] = e.Status.Detail })
            { AlreadyReported = true };
        }
        foreach (var line in Lines(violations)) output.WriteLine(line);
        var count = CountLine(violations);
        output.WriteLine(count);
        return new CliException(ExitCodes.Usage, $"plan {source} is invalid: {count}", JsonOutput.Violations(violations)) { AlreadyReported = true };
    }
}
