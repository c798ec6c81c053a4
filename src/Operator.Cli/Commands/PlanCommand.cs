using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Grpc.Core;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli.Commands;

/// <summary><c>smp plan check FILE</c>.</summary>
internal static class PlanCommand
{
    public static Command Build(CliCommands app)
    {
        var file = new Argument<string>("FILE") { Description = "Plan file (proto3 JSON of smprobot.v1.Plan, at most 8 MiB)" };
        var check = new Command("check", "Validate a plan against the controller's machine profile. Prints every violation "
            + "as 'dot ID  rule  message' and exits 2, or the dot count and estimated kinematic time.")
        {
            file,
        };
        app.Bind(check, async (ctx, parse, ct) =>
        {
            var path = parse.GetValue(file)!;
            var planJson = PlanFile.ReadChecked(path);
            using var conn = ctx.Connect();
            ValidatePlanResponse reply;
            try
            {
                reply = await conn.Sessions.ValidatePlanAsync(new ValidatePlanRequest { PlanJson = planJson }, deadline: conn.Deadline(), cancellationToken: ct);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.InvalidArgument)
            {
                throw PlanViolationReport.Report(ctx, e, path);
            }
            var text = string.Format(CultureInfo.InvariantCulture, "plan {0} is valid: {1} dots, estimated kinematic time {2} (profile {3})",
                string.IsNullOrEmpty(reply.PlanName) ? path : reply.PlanName, reply.DotCount, Formatting.Duration(reply.EstimatedKinematicSeconds), reply.ProfileName);
            ctx.Result(text, new JsonObject
            {
                ["valid"] = true,
                ["planName"] = reply.PlanName,
                ["dotCount"] = reply.DotCount,
                ["estimatedKinematicSeconds"] = reply.EstimatedKinematicSeconds,
                ["profileName"] = reply.ProfileName,
                ["exitCode"] = ExitCodes.Success,
            });
            return ExitCodes.Success;
        });
        return new Command("plan", "Plan files") { check };
    }
}
