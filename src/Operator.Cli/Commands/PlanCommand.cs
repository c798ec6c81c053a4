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
        var profile = new Option<string?>("--profile")
        {
            Description = "Check against this profile file (hardware/profiles/*.json) here, offline, with the controller's own validator; without it the controller checks against its active profile",
            HelpName = "FILE",
        };
        var check = new Command("check", "Validate a plan against a machine profile (the controller's, or --profile FILE offline). Prints every violation "
            + "as 'dot ID  rule  message' and exits 2, or the dot count and (from the controller) the estimated kinematic time.")
        {
            file,
            profile,
        };
        app.Bind(check, async (ctx, parse, ct) =>
        {
            var path = parse.GetValue(file)!;
            var planJson = PlanFile.ReadChecked(path);
            if (parse.GetValue(profile) is { } profilePath) return CheckOffline(ctx, path, planJson, profilePath);
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
            catch (RpcException e) when (CommandContext.IsConnectFailure(e))
            {
                throw new CliException(ExitCodes.Failure, CommandContext.DescribeRpcError(e, conn.Address) + "; to check against a profile file without a controller, give --profile FILE");
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

    /// <summary>The controller's validator (SmpRobot.Machine) against a profile file, here: no controller needed.</summary>
    private static int CheckOffline(CommandContext ctx, string path, string planJson, string profilePath)
    {
        SmpRobot.Machine.MachineProfile machineProfile;
        try
        {
            machineProfile = SmpRobot.Machine.MachineProfile.Load(profilePath);
        }
        catch (InvalidDataException e)
        {
            throw new CliException(ExitCodes.Usage, e.Message);
        }
        var result = new SmpRobot.Machine.PlanValidator(machineProfile).ValidateJson(planJson);
        if (!result.IsValid) throw PlanViolationReport.Report(ctx, result, path);
        var plan = result.Plan!;
        var text = string.Format(CultureInfo.InvariantCulture, "plan {0} is valid: {1} dots (profile {2}, checked offline; the kinematic time estimate comes from a controller)",
            string.IsNullOrEmpty(plan.Name) ? path : plan.Name, plan.Dots.Count, machineProfile.Name);
        ctx.Result(text, new JsonObject
        {
            ["valid"] = true,
            ["planName"] = plan.Name,
            ["dotCount"] = plan.Dots.Count,
            ["estimatedKinematicSeconds"] = null,
            ["profileName"] = machineProfile.Name,
            ["offline"] = true,
            ["exitCode"] = ExitCodes.Success,
        });
        return ExitCodes.Success;
    }
}
