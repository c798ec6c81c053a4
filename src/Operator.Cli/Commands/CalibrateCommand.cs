using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli.Commands;

/// <summary>
/// <c>smp calibrate intrinsics|gantry|check|list</c>: the engineer's calibrations, through the
/// controller's CalibrationService. Exit 0 done (for check: PASS), 1 refused or check FAILED, 2 bad input.
/// </summary>
internal static class CalibrateCommand
{
    public static Command Build(CliCommands app)
    {
        var root = new Command("calibrate", "Engineer's calibrations: camera intrinsics, the camera-to-gantry mapping, the daily drift check; versioned in the controller");
        root.Subcommands.Add(Intrinsics(app));
        root.Subcommands.Add(Gantry(app));
        root.Subcommands.Add(Check(app));
        root.Subcommands.Add(List(app));
        return root;
    }

    private static Command Intrinsics(CliCommands app)
    {
        var camera = new Option<string?>("--camera") { Description = "synthetic[@WxH], file:DIR (a folder of images) or device:N[@WxH] (default: the controller's camera)", HelpName = "SPEC" };
        var views = new Option<int>("--views") { Description = "Views to collect (5..200, default 40; more views pin the focal length down)", HelpName = "N" };
        var png = new Option<string?>("--png") { Description = "Write the per-view error histogram to FILE (PNG)", HelpName = "FILE" };
        var notes = new Option<string?>("--notes") { Description = "Notes stored with the calibration", HelpName = "TEXT" };
        var command = new Command("intrinsics", "Solve the camera matrix and lens distortion from views of the ChArUco calibration board "
            + "(hardware/boards/intrinsics-charuco-9x7.json); prints the RMS reprojection error, per-view errors, rejected views and what the views still miss")
        {
            camera, views, png, notes,
        };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            var pngPath = parse.GetValue(png);
            if (pngPath is not null) OutputFile.Check(pngPath);
            using var conn = ctx.Connect();
            ctx.Info("collecting views and solving…");
            var reply = await conn.Calibration.CalibrateIntrinsicsAsync(new CalibrateIntrinsicsRequest
            {
                Camera = parse.GetValue(camera) ?? "",
                Views = parse.GetValue(views),
                Notes = parse.GetValue(notes) ?? "",
            }, deadline: conn.Deadline(ControllerConnection.CalibrationTimeout), cancellationToken: ct);
            if (pngPath is not null) OutputFile.Write(pngPath, reply.Png.Span);
            var json = JsonOutput.Message(reply);
            json.Remove("png");
            if (pngPath is not null) json["pngFile"] = pngPath;
            var exit = reply.Calibration.Valid ? ExitCodes.Success : ExitCodes.Failure;
            json["exitCode"] = exit;
            var sb = new StringBuilder();
            sb.AppendLine(Header(reply.Calibration));
            sb.Append("RMS       ").Append(Formatting.Number(reply.RmsPx, "0.000")).Append(" px over ").Append(reply.Views.Count(v => v.Used).ToString(Inv)).Append(" views (")
                .Append(reply.Views.Count(v => !v.Used).ToString(Inv)).AppendLine(" rejected)");
            sb.Append("Camera    fx ").Append(Formatting.Number(reply.FxPx, "0.0")).Append(", fy ").Append(Formatting.Number(reply.FyPx, "0.0")).Append(", cx ")
                .Append(Formatting.Number(reply.CxPx, "0.0")).Append(", cy ").Append(Formatting.Number(reply.CyPx, "0.0")).Append(" px; distortion ")
                .AppendLine(string.Join(" ", reply.Distortion.Select(d => Formatting.Number(d, "0.00000"))));
            foreach (var v in reply.Views) sb.Append("  ").Append(v.Name).Append(": ").Append(v.Corners.ToString(Inv)).Append(" corners, ").Append(Formatting.Number(v.RmsPx, "0.000")).Append(" px").AppendLine(v.Used ? "" : " REJECTED: " + v.Reason);
            foreach (var r in reply.Refused) sb.Append("  refused ").AppendLine(r);
            foreach (var h in reply.CoverageHints) sb.Append("  hint: ").AppendLine(h);
            if (pngPath is not null) sb.Append("Wrote     ").AppendLine(pngPath);
            ctx.Result(sb.ToString().TrimEnd(), json);
            return exit;
        });
        return command;
    }

    private static Command Gantry(CliCommands app)
    {
        var points = new Option<int>("--points") { Description = "Stops over the calibration volume (15..400, default 25)", HelpName = "N" };
        var heights = new Option<int>("--heights") { Description = "Height levels (>= 2, default 2)", HelpName = "N" };
        var png = new Option<string?>("--png") { Description = "Write the residual arrows (top view) to FILE (PNG)", HelpName = "FILE" };
        var histogram = new Option<string?>("--histogram") { Description = "Write the residual histogram to FILE (PNG)", HelpName = "FILE" };
        var notes = new Option<string?>("--notes") { Description = "Notes stored with the calibration", HelpName = "TEXT" };
        var command = new Command("gantry", "Camera-to-gantry calibration: the gantry carries the needle-head marker to N stops at two or more heights "
            + "(needle drive off, nothing plunges), the camera measures it, T_GC is fitted with outlier rejection and hold-out validation. "
            + "Needs a homed machine and no running session; takes about a minute. A valid result is used at once by head tracking.")
        {
            points, heights, png, histogram, notes,
        };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            var pngPath = parse.GetValue(png);
            var histogramPath = parse.GetValue(histogram);
            if (pngPath is not null) OutputFile.Check(pngPath);
            if (histogramPath is not null) OutputFile.Check(histogramPath);
            using var conn = ctx.Connect();
            ctx.Info("calibrating: the gantry moves the needle-head marker through the calibration volume (keep clear; e-stop: smp estop)…");
            var request = new CalibrateGantryRequest
            {
                Points = parse.GetValue(points),
                Heights = parse.GetValue(heights),
                Notes = parse.GetValue(notes) ?? "",
            };
            var reply = await MotionCall.RunAsync(ctx, conn, "calibration",
                token => conn.Calibration.CalibrateGantryAsync(request, deadline: conn.Deadline(ControllerConnection.CalibrationTimeout), cancellationToken: token).ResponseAsync, ct);
            if (pngPath is not null) OutputFile.Write(pngPath, reply.ResidualsPng.Span);
            if (histogramPath is not null) OutputFile.Write(histogramPath, reply.HistogramPng.Span);
            var json = JsonOutput.Message(reply);
            json.Remove("residualsPng");
            json.Remove("histogramPng");
            if (pngPath is not null) json["pngFile"] = pngPath;
            if (histogramPath is not null) json["histogramFile"] = histogramPath;
            var exit = reply.Calibration.Valid ? ExitCodes.Success : ExitCodes.Failure;
            json["exitCode"] = exit;
            var t = reply.GantryFromCamera;
            var sb = new StringBuilder();
            sb.AppendLine(Header(reply.Calibration));
            sb.Append("T_GC      translation ").Append(Vec(t.TranslationMm)).Append(" mm, rotation vector ").Append(Vec(t.RotationVectorDeg)).AppendLine(" deg");
            sb.Append("Tip       ").Append(Vec(reply.TipInMarkerMm)).Append(" mm in the marker frame (").Append(reply.TipOffsetSource).Append(')');
            if (reply.TipTouchResidualsMm.Count > 0) sb.Append("; touch residuals ").Append(string.Join(", ", reply.TipTouchResidualsMm.Select(Formatting.Mm))).Append(" mm");
            sb.AppendLine();
            sb.Append("Fit       ").AppendLine(Stats(reply.Fit));
            sb.Append("Validation ").AppendLine(Stats(reply.Validation));
            sb.Append("Accuracy  63 % of validation points within ").Append(Formatting.Mm(reply.Validation.R63)).Append(" mm, 98 % within ").Append(Formatting.Mm(reply.Validation.R98)).AppendLine(" mm");
            sb.Append("Stops     ").Append(reply.Stops.Count.ToString(Inv)).Append(", outliers ").AppendLine(reply.Outliers.Count == 0 ? "none" : string.Join(", ", reply.Outliers));
            foreach (var w in reply.Warnings) sb.Append("  warning: ").AppendLine(w);
            sb.Append("Time      ").Append(Formatting.Number(reply.Seconds, "0.0")).Append(" s; ").AppendLine(reply.Applied ? "head tracking now uses this calibration" : "NOT used (not valid)");
            if (pngPath is not null) sb.Append("Wrote     ").AppendLine(pngPath);
            if (histogramPath is not null) sb.Append("Wrote     ").AppendLine(histogramPath);
            ctx.Result(sb.ToString().TrimEnd(), json);
            return exit;
        });
        return command;
    }

    private static Command Check(CliCommands app)
    {
        var tolerance = new Option<double>("--tolerance") { Description = "Per-point tolerance, mm (default 0.1)", HelpName = "MM" };
        var png = new Option<string?>("--png") { Description = "Write the residual arrows to FILE (PNG)", HelpName = "FILE" };
        var command = new Command("check", "Start-of-day drift check: 5 stops measured against the current camera-to-gantry calibration; "
            + "exit 0 PASS, 1 FAIL (recalibrate) or refused")
        {
            tolerance, png,
        };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            var pngPath = parse.GetValue(png);
            if (pngPath is not null) OutputFile.Check(pngPath);
            var tol = parse.GetValue(tolerance);
            if (tol < 0 || !double.IsFinite(tol)) throw new CliException(ExitCodes.Usage, "--tolerance must be a positive number of mm");
            using var conn = ctx.Connect();
            var reply = await MotionCall.RunAsync(ctx, conn, "the drift check",
                token => conn.Calibration.CheckDriftAsync(new CheckDriftRequest { ToleranceMm = tol }, deadline: conn.Deadline(ControllerConnection.CalibrationTimeout), cancellationToken: token).ResponseAsync, ct);
            if (pngPath is not null) OutputFile.Write(pngPath, reply.ResidualsPng.Span);
            var json = JsonOutput.Message(reply);
            json.Remove("residualsPng");
            if (pngPath is not null) json["pngFile"] = pngPath;
            var exit = reply.Passed ? ExitCodes.Success : ExitCodes.Failure;
            json["exitCode"] = exit;
            var sb = new StringBuilder();
            sb.AppendLine(reply.Summary);
            sb.Append("Against   calibration ").AppendLine(reply.CalibrationId);
            foreach (var p in reply.Points)
            {
                sb.Append("  at ").Append(Vec(p.GantryMm)).Append(": ").Append(Formatting.Mm(p.ErrorMm)).Append(" mm ").AppendLine(p.Passed ? "ok" : "BEYOND TOLERANCE");
            }
            sb.Append("Mean      ").Append(Vec(reply.MeanResidualMm)).Append(" mm");
            if (pngPath is not null) sb.AppendLine().Append("Wrote     ").Append(pngPath);
            ctx.Result(sb.ToString(), json);
            return exit;
        });
        return command;
    }

    private static Command List(CliCommands app)
    {
        var command = new Command("list", "Stored calibrations, newest first; * marks the one sessions use");
        app.Bind(command, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            var reply = await conn.Calibration.ListCalibrationsAsync(new ListCalibrationsRequest(), deadline: conn.Deadline(), cancellationToken: ct);
            var json = JsonOutput.Message(reply);
            var items = json["calibrations"] as JsonArray;
            foreach (var item in items ?? []) (item as JsonObject)?.Remove("dataJson");
            json["exitCode"] = ExitCodes.Success;
            var sb = new StringBuilder();
            sb.Append("Camera ").Append(reply.Camera).Append("; current gantry calibration: ").AppendLine(reply.CurrentGantryId.Length > 0 ? reply.CurrentGantryId : "none"
                + (reply.CalibrationRequired ? " (tracked sessions are refused: run smp calibrate gantry)" : ""));
            if (reply.Calibrations.Count == 0) sb.Append("no calibrations stored");
            foreach (var c in reply.Calibrations)
            {
                sb.Append(c.Current ? "* " : "  ").Append(c.Id).Append("  ").Append(c.Kind == CalibrationKind.Gantry ? "gantry    " : "intrinsics").Append("  ")
                    .Append(c.CreatedAt.ToDateTimeOffset().ToString("yyyy-MM-dd HH:mm", Inv)).Append(" UTC  ").Append(c.Camera).Append("  ").Append(c.ProfileName).Append("  ")
                    .Append(c.Kind == CalibrationKind.Gantry ? "RMS " + Formatting.Mm(c.Rms) + " mm, p95 " + Formatting.Mm(c.P95) + " mm" : "RMS " + Formatting.Number(c.Rms, "0.000") + " px")
                    .Append(", ").Append(c.Points.ToString(Inv)).Append(c.Kind == CalibrationKind.Gantry ? " stops" : " views").AppendLine(c.Valid ? "" : "  NOT valid");
            }
            ctx.Result(sb.ToString().TrimEnd(), json);
            return ExitCodes.Success;
        });
        return command;
    }

    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private static string Header(Calibration c) =>
        $"Calibration {c.Id} ({(c.Valid ? "valid" : "NOT valid")}) for camera {c.Camera} on profile {c.ProfileName}: {c.Method}";

    private static string Vec(Position p) => "(" + Formatting.Mm(p.XMm) + ", " + Formatting.Mm(p.YMm) + ", " + Formatting.Mm(p.ZMm) + ")";

    private static string Stats(ResidualSummary s) => s.Count == 0
        ? "no points"
        : $"RMS {Formatting.Mm(s.Rms)} / p95 {Formatting.Mm(s.P95)} / max {Formatting.Mm(s.Max)} mm (n = {s.Count.ToString(Inv)})";
}
