using System.CommandLine;
using System.Globalization;
using System.Text;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli.Commands;

/// <summary><c>smp surface probe</c> and <c>smp surface list</c>: measuring a session's scalp and registering its head model.</summary>
internal static class SurfaceCommand
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static Command Build(CliCommands app)
    {
        var command = new Command("surface", "Measure the scalp: probe the skin of a session's head position and register its head model (T_HS for today)");
        command.Subcommands.Add(Probe(app));
        command.Subcommands.Add(List(app));
        return command;
    }

    private static Command Probe(CliCommands app)
    {
        var session = new Argument<string>("SESSION") { Description = "The session whose scalp is probed (its plan must come from a design; smp run sends the head model with it)" };
        var patch = new Option<uint>("--patch") { Description = "The plan's head position (default: its first). Position the head as the session's hold said before probing", HelpName = "N" };
        var points = new Option<uint>("--points") { Description = "Probes, spread over the head position's dots (default 16; 6..64)", HelpName = "N" };
        var png = new Option<string?>("--png") { Description = "Also draw the registration: every probe from above, coloured by its residual, outliers crossed", HelpName = "FILE" };
        var command = new Command("probe", "Probe the skin where a head position of the session places its dots (homed, needle drive off, slow, at most 1.5 mm past where the model puts the skin) "
            + "and register the head model to the contacts. Exit 0 valid, 1 not valid (refit or check the model) or refused. Ctrl+C stops the gantry.")
        {
            session, patch, points, png,
        };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            var request = new ProbeSurfaceRequest { SessionId = parse.GetValue(session)!, Patch = parse.GetValue(patch), Points = parse.GetValue(points) };
            ctx.Info($"probing the scalp of session {request.SessionId}{(request.Patch > 0 ? $", head position {request.Patch}" : "")} (needle drive off; keep clear; e-stop: smp estop)…");
            var reply = await MotionCall.RunAsync(ctx, conn, "the surface probe",
                token => conn.Surface.ProbeSurfaceAsync(request, deadline: conn.Deadline(ControllerConnection.SurfaceProbeTimeout), cancellationToken: token).ResponseAsync, ct);
            var exit = reply.Valid ? ExitCodes.Success : ExitCodes.Failure;
            var json = JsonOutput.Message(reply);
            json["exitCode"] = exit;
            var sb = new StringBuilder();
            sb.AppendLine(Header(reply));
            foreach (var c in reply.ContactPoints)
            {
                sb.Append("  probe ").Append(c.Index.ToString(Inv).PadLeft(2)).Append(" at x ").Append(Formatting.Mm(c.ContactXMm)).Append(" y ").Append(Formatting.Mm(c.ContactYMm))
                  .Append(" z ").Append(Formatting.Mm(c.ContactZMm)).Append(" mm (H): residual ").Append(Formatting.Mm(c.ResidualMm)).Append(" mm").AppendLine(c.Inlier ? "" : "  OUTLIER, not used");
            }
            sb.Append("Time      ").Append(Formatting.Number(reply.Seconds, "0.0")).Append(" s; ").Append(reply.Valid ? "sessions use this registration" : "NOT used: " + reply.Notes);
            if (parse.GetValue(png) is { } picture && reply.ContactPoints.Count > 0)
            {
                Treatment.Preview.SurfacePicture.WritePng(
                    [.. reply.ContactPoints.Select(c => new Treatment.Preview.PictureContact((int)c.Index, new Geometry.Vec3(c.AimXMm, c.AimYMm, c.AimZMm), new Geometry.Vec3(c.ContactXMm, c.ContactYMm, c.ContactZMm), c.ResidualMm, c.Inlier))],
                    $"surface registration {reply.Id}, head position {(reply.Patch == 0 ? "-" : reply.Patch.ToString(Inv))}{(reply.HeightMap ? " (height map)" : "")}",
                    string.Create(Inv, $"{(reply.Valid ? "valid" : "NOT valid")}: {reply.Inliers} of {reply.Contacts} contacts, RMS {reply.RmsMm:0.000} p95 {reply.P95Mm:0.000} max {reply.MaxMm:0.000} mm"),
                    ResidualScaleMm, picture);
                sb.AppendLine().Append("Picture   ").Append(Path.GetFullPath(picture));
                json["png"] = Path.GetFullPath(picture);
            }
            ctx.Result(sb.ToString().TrimEnd(), json);
            return exit;
        });
        return command;
    }

    /// <summary>The residual at either end of the picture's colour scale: the largest a registration's contact may have, mm.</summary>
    private const double ResidualScaleMm = 0.15;

    private static Command List(CliCommands app)
    {
        var session = new Argument<string>("SESSION") { Description = "The session" };
        var command = new Command("list", "A session's surface registrations, newest first") { session };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            var reply = await conn.Surface.ListSurfaceRegistrationsAsync(new ListSurfaceRegistrationsRequest { SessionId = parse.GetValue(session)! }, deadline: conn.Deadline(), cancellationToken: ct);
            var text = reply.Registrations.Count == 0 ? "no surface registrations: smp surface probe SESSION" : string.Join(Environment.NewLine, reply.Registrations.Select(Header));
            ctx.Result(text, JsonOutput.Message(reply));
            return ExitCodes.Success;
        });
        return command;
    }

    private static string Header(SurfaceRegistration r)
    {
        var t = r.HeadFromScalp ?? new FrameTransform();
        return string.Create(Inv, $"{r.Id}  head position {(r.Patch == 0 ? "-" : r.Patch.ToString(Inv))}  {(!r.Valid ? "NOT VALID" : r.WithdrawnBecause.Length > 0 ? "WITHDRAWN" : "VALID")}{(r.HeightMap ? "  HEIGHT MAP" : "")}  {r.Inliers} of {r.Contacts} contacts  ")
            + $"RMS {Formatting.Mm(r.RmsMm)} p95 {Formatting.Mm(r.P95Mm)} max {Formatting.Mm(r.MaxMm)} mm  "
            + (r.HeightMap ? "(the skin against the plan's heights)" : $"T_HS translation ({Formatting.Mm(t.TxMm)}, {Formatting.Mm(t.TyMm)}, {Formatting.Mm(t.TzMm)}) mm, rotation ({Formatting.Number(t.RxDeg, "0.000")}, {Formatting.Number(t.RyDeg, "0.000")}, {Formatting.Number(t.RzDeg, "0.000")})°")
            + (r.Notes.Length > 0 ? Environment.NewLine + "          " + r.Notes : "")
            + (r.WithdrawnBecause.Length > 0 ? Environment.NewLine + "          withdrawn by a re-check during the session: " + r.WithdrawnBecause : "");
    }
}
