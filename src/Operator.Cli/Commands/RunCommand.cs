using System.CommandLine;
using Grpc.Core;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli.Commands;

/// <summary><c>smp run FILE [--no-ui]</c>: home if needed, create, start and supervise a session to its end.</summary>
internal static class RunCommand
{
    private static readonly TimeSpan FirstBeatTimeout = TimeSpan.FromSeconds(2);

    public static Command Build(CliCommands app)
    {
        var file = new Argument<string?>("FILE") { Description = "Plan file (proto3 JSON of smprobot.v1.Plan, at most 8 MiB)", Arity = ArgumentArity.ZeroOrOne };
        var existing = new Option<string?>("--session") { Description = "Run a session already created (a treatment's: smp treatment start / next) instead of a plan file", HelpName = "ID" };
        var noUi = new Option<bool>("--no-ui") { Description = "No live view: a progress line on stderr every ~2 s" };
        var check = new Option<bool>("--check") { Description = "Before the first dot, run the whole program through the firmware's check mode ($C); any refused line refuses the start" };
        var overrideReason = new Option<string?>("--calibration-override")
        {
            Description = "Start a tracked session although there is no valid camera-to-gantry calibration (or it is too old); REASON is recorded with the session",
            HelpName = "REASON",
        };
        var surfaceOverride = SurfaceOverrideOption("Place the first head position on the plan's own skin heights instead of measuring the scalp first (smp surface probe); REASON is recorded");
        var command = new Command("run", "Run a plan as a new session and supervise it to its end. Homes the machine first "
            + "if needed. While it runs, this console sends the operator heartbeat; e / Esc / Ctrl+C = EMERGENCY STOP, "
            + "space = pause/resume. Exit 0 COMPLETED, 3 EMERGENCY_STOPPED/ABORTED, 1 FAULTED or error, 2 bad plan.")
        {
            file,
            existing,
            noUi,
            check,
            overrideReason,
            surfaceOverride,
        };
        command.Validators.Add(result =>
        {
            if ((result.GetValue(file) is null) == (result.GetValue(existing) is null)) result.AddError("give a plan FILE or --session ID (one of them)");
        });
        app.Bind(command, (ctx, parse, ct) =>
        {
            if (parse.GetValue(existing) is { } sessionId)
            {
                return RunSessionAsync(ctx, null, sessionId, parse.GetValue(noUi), ct, parse.GetValue(check), parse.GetValue(overrideReason), parse.GetValue(surfaceOverride));
            }
            var path = parse.GetValue(file)!;
            var planJson = PlanFile.ReadChecked(path);
            return RunSessionAsync(ctx, planJson, path, parse.GetValue(noUi), ct, parse.GetValue(check), parse.GetValue(overrideReason), parse.GetValue(surfaceOverride));
        });
        return command;
    }

    /// <summary>
    /// The head model a plan names (source.headModelFile, relative to the plan file's folder), as bytes to send with
    /// the session; null when the plan names none or does not parse. A named model that is missing is said, not fatal:
    /// the session is created without it, and its scalp cannot be registered.
    /// </summary>
    internal static Google.Protobuf.ByteString? HeadModelBeside(CommandContext ctx, string planJson, string planPath)
    {
        string file;
        try
        {
            file = Plan.Parser.ParseJson(planJson).Source?.HeadModelFile ?? "";
        }
        catch (Google.Protobuf.InvalidProtocolBufferException)
        {
            return null;
        }
        if (file.Length == 0 || !File.Exists(planPath)) return null;
        var path = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(planPath))!, file));
        if (!File.Exists(path))
        {
            ctx.Info($"warning: the plan's head model {path} is missing: the session is created without it, and its scalp cannot be registered (smp surface probe)");
            return null;
        }
        return Google.Protobuf.ByteString.CopyFrom(File.ReadAllBytes(path));
    }

    private static Option<string?> SurfaceOverrideOption(string description) => new("--surface-override") { Description = description, HelpName = "REASON" };

    /// <summary>
    /// Before a start or resume: when the head position it enters must have its scalp measured (the plan names a head
    /// model and that position has no valid registration), probes and registers it (smp surface probe), unless the
    /// operator overrides. A registration that is not valid stops here, with the session not started. Then, for a
    /// treatment's later session or touch-up, matches that head position to the earlier dots when the controller says
    /// it must (<see cref="MatchEarlierDotsAsync"/>).
    /// </summary>
    /// <param name="points">Probes (0: the controller's default, 16).</param>
    internal static async Task MeasureSurfaceIfNeededAsync(CommandContext ctx, ControllerConnection conn, string sessionId, string? surfaceOverride, CancellationToken ct, uint points = 0)
    {
        if (!string.IsNullOrWhiteSpace(surfaceOverride)) return;
        SurfaceNeededReply needed;
        try
        {
            needed = await conn.Surface.SurfaceNeededAsync(new SurfaceNeededRequest { SessionId = sessionId }, deadline: conn.Deadline(), cancellationToken: ct);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Unimplemented)
        {
            return; // a controller without surface registration: it has no such gate either
        }
        var where = needed.Patch == 0 ? "the scalp" : $"the scalp of head position {needed.Patch}";
        if (needed.Needed)
        {
            ctx.Info($"measuring {where} before its first dot (needle drive off; keep clear)…");
            var reply = await MotionCall.RunAsync(ctx, conn, "the surface probe",
                token => conn.Surface.ProbeSurfaceAsync(new ProbeSurfaceRequest { SessionId = sessionId, Patch = needed.Patch, Points = points }, deadline: conn.Deadline(ControllerConnection.SurfaceProbeTimeout), cancellationToken: token).ResponseAsync, ct);
            if (!reply.Valid)
            {
                throw new CliException(ExitCodes.Failure, $"{where} does not fit the head model ({reply.Notes}); session {sessionId} is not started: check the probe and the head model, "
                    + $"then smp surface probe {sessionId}{(needed.Patch > 0 ? $" --patch {needed.Patch}" : "")}, or start it on the plan's own skin heights with --surface-override REASON");
            }
            ctx.Info($"{where} measured: registration {reply.Id}, {reply.Inliers} of {reply.Contacts} contacts, RMS {Formatting.Mm(reply.RmsMm)} mm, max {Formatting.Mm(reply.MaxMm)} mm");
            needed = await conn.Surface.SurfaceNeededAsync(new SurfaceNeededRequest { SessionId = sessionId }, deadline: conn.Deadline(), cancellationToken: ct);
        }
        if (needed.MatchNeeded) await MatchEarlierDotsAsync(ctx, conn, sessionId, needed.Patch, needed.TouchUp, ct);
    }

    /// <summary>
    /// A treatment's later session or touch-up: the camera finds the earlier sessions' dots at the head position
    /// entered and the controller registers it on them (smp treatment match). Refused, the session is not started.
    /// </summary>
    internal static async Task MatchEarlierDotsAsync(CommandContext ctx, ControllerConnection conn, string sessionId, uint patch, bool touchUp, CancellationToken ct)
    {
        var where = patch == 0 ? "" : $" at head position {patch}";
        ctx.Info(touchUp ? $"touch-up: finding the recorded dots{where} with the camera (faded and missing ones are restored)…" : $"finding the earlier sessions' dots{where} with the camera…");
        var match = await conn.Treatments.MatchEarlierDotsAsync(new MatchEarlierDotsRequest { SessionId = sessionId, Patch = patch },
            deadline: conn.Deadline(ControllerConnection.TreatmentTimeout), cancellationToken: ct);
        if (!match.Accepted)
        {
            throw new CliException(ExitCodes.Failure, $"the earlier sessions' dots were not matched{where} ({match.Reason}); session {sessionId} is not started. "
                + $"Check that the scalp is uncovered and that this is the client's treatment, then run smp treatment match {sessionId}{(patch > 0 ? $" --patch {patch}" : "")}");
        }
        ctx.Info(FormattableString.Invariant($"matched {match.Matched} earlier dots of {match.ExpectedInView} expected in view (residual RMS {match.ResidualRmsMm:0.000} mm); the board sits {match.MovedFromInitialMm:0.00} mm from where probing put it"));
        ctx.Info(match.TouchUp is { } t
            ? FormattableString.Invariant($"touch-up: {t.Candidates} recorded dots here, {t.Candidates - t.NotInView} in view: {t.Seen} still there, {t.Faded} faded, {t.Missing} missing, {t.Uncertain} with a spot beside them (left out, look at them); {t.Faded + t.Missing} to restore, {t.NotInView} out of view left out")
            : FormattableString.Invariant($"{match.LeftOut} new dot(s) left out for spacing"));
    }

    /// <summary>The head positions (patches) of a plan's JSON, in the order they are placed; empty when it has none or does not parse.</summary>
    internal static IReadOnlyList<PlanPatch> HeadPositions(string planJson)
    {
        try
        {
            var plan = Plan.Parser.ParseJson(planJson);
            var used = plan.Dots.Select(d => d.Patch).ToHashSet();
            return [.. plan.Patches.Where(p => used.Contains(p.Number)).OrderBy(p => p.Number)];
        }
        catch (Google.Protobuf.InvalidProtocolBufferException)
        {
            return [];
        }
    }

    /// <summary>
    /// <c>smp session resume S</c>: this console supervises the resumed session as <c>smp run</c> does (operator
    /// heartbeat, live view and keys, summary and exit code by the end state); a stopped, faulted or e-stopped
    /// session is resumed once its dots in doubt are resolved, the e-stop reset and the machine homed.
    /// </summary>
    public static Command BuildResume(CliCommands app)
    {
        var id = new Argument<string>("SESSION") { Description = "Session id" };
        var noUi = new Option<bool>("--no-ui") { Description = "No live view: a progress line on stderr every ~2 s" };
        var overrideReason = new Option<string?>("--calibration-override")
        {
            Description = "Resume a tracked session although there is no valid camera-to-gantry calibration (or it is too old); REASON is recorded with the session",
            HelpName = "REASON",
        };
        var surfaceOverride = SurfaceOverrideOption("Place the head position entered on the plan's own skin heights instead of measuring the scalp first (smp surface probe); REASON is recorded");
        var command = new Command("resume", "Resume a paused, held, faulted or e-stopped session and supervise it to its end, as smp run does "
            + "(operator heartbeat; e / Esc / Ctrl+C = EMERGENCY STOP, space = pause/resume). Refused while dots are in doubt "
            + "(smp session resolve), while the e-stop is latched (smp estop --reset) or the machine is not homed (smp machine home). "
            + "Exit 0 COMPLETED, 3 EMERGENCY_STOPPED/ABORTED or held, 1 FAULTED or error.")
        {
            id,
            noUi,
            overrideReason,
            surfaceOverride,
        };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            var sessionId = parse.GetValue(id)!;
            await using var heartbeat = OperatorHeartbeat.Start(conn.Safety, ctx.Host.OperatorName, ctx.Host.Time, ct);
            if (!await heartbeat.WaitForFirstReplyAsync(FirstBeatTimeout, ctx.Host.Time))
            {
                ctx.Info("warning: the controller has not acknowledged the operator heartbeat yet");
            }
            var reason = parse.GetValue(overrideReason);
            var surface = parse.GetValue(surfaceOverride);
            await MeasureSurfaceIfNeededAsync(ctx, conn, sessionId, surface, ct);
            var session = await conn.Sessions.ResumeAsync(new SessionRef
            {
                SessionId = sessionId,
                ConsoleId = heartbeat.ConsoleId,
                CalibrationOverride = reason is null ? null : new CalibrationOverride { Reason = reason },
                SurfaceOverride = surface ?? "",
            }, deadline: conn.Deadline(), cancellationToken: ct);
            ctx.Info($"session {session.Id} resumed: {Formatting.StateName(session.State)}");
            var follower = new SessionFollower(ctx, conn, new FollowOptions(ctx.CanUseLiveView(parse.GetValue(noUi)), InterruptAlwaysStops: true, () => heartbeat.Latest, heartbeat.ConsoleId));
            var result = await follower.FollowAsync(session.Id, ct);
            if (heartbeat.Failure is { } failure) ctx.Info("note: the operator heartbeat failed during the session: " + failure.Message);
            return WriteSummary(ctx, result);
        });
        return command;
    }

    /// <summary>
    /// The session flow shared by <c>run</c> and <c>demo</c>: safety check, home if needed, create, heartbeat, start,
    /// follow to the end, summary (text or JSON). Returns the exit code.
    /// </summary>
    /// <param name="planJson">The plan to create a session of; null: <paramref name="source"/> is a session already created, which is run.</param>
    public static async Task<int> RunSessionAsync(CommandContext ctx, string? planJson, string source, bool noUi, CancellationToken ct, bool checkFirst = false, string? calibrationOverride = null, string? surfaceOverride = null, uint surfacePoints = 0)
    {
        using var conn = ctx.Connect();

        // First call on the safety channel: proves the controller answers and warms the e-stop connection.
        var safety = await conn.Safety.GetSafetyStatusAsync(new GetSafetyStatusRequest(), deadline: conn.Deadline(), cancellationToken: ct);
        if (safety.EstopLatched)
        {
            throw new CliException(ExitCodes.Failure, $"the emergency stop is latched (by {Or(safety.EstopSource)}: {Or(safety.EstopReason)}); "
                + "make the machine safe, then run 'smp estop --reset'");
        }

        // Everything that would refuse the start, asked before anything moves or is created (no orphan session, no homing for nothing).
        var readiness = await conn.Sessions.CheckStartAsync(new CheckStartRequest
        {
            CalibrationOverride = calibrationOverride is null ? null : new CalibrationOverride { Reason = calibrationOverride },
        }, deadline: conn.Deadline(), cancellationToken: ct);
        if (readiness.Refusals.Count > 0)
        {
            throw new CliException(ExitCodes.Failure, "cannot start a session (nothing was moved or created): " + string.Join("; ", readiness.Refusals));
        }

        var machine = await conn.Machine.GetStatusAsync(new GetMachineStatusRequest(), deadline: conn.Deadline(), cancellationToken: ct);
        if (!machine.Homed)
        {
            ctx.Info("machine is not homed: homing now (the gantry moves to its home switches)…");
            machine = await MotionCall.RunAsync(ctx, conn, "homing",
                token => conn.Machine.HomeAsync(new HomeRequest(), deadline: conn.Deadline(ControllerConnection.HomeTimeout), cancellationToken: token).ResponseAsync, ct);
            ctx.Info($"homed: {machine.State} at x {Formatting.Mm(machine.Position?.XMm ?? 0)} y {Formatting.Mm(machine.Position?.YMm ?? 0)} z {Formatting.Mm(machine.Position?.ZMm ?? 0)} mm");
        }

        Session session;
        if (planJson is null)
        {
            session = await conn.Sessions.GetAsync(new SessionRef { SessionId = source }, deadline: conn.Deadline(), cancellationToken: ct);
            if (session.State != SessionState.Created)
            {
                throw new CliException(ExitCodes.Usage, $"session {session.Id} is {Formatting.StateName(session.State)}, not CREATED: smp run --session starts a new session; go on with a stopped one with smp session resume {session.Id}");
            }
            ctx.Info($"session {session.Id}: plan {session.PlanName}, {session.Dots?.Total ?? 0} dots, profile {session.ProfileName}");
        }
        else
        {
            try
            {
                session = await conn.Sessions.CreateSessionAsync(new CreateSessionRequest { PlanJson = planJson, HeadModel = HeadModelBeside(ctx, planJson, source) ?? Google.Protobuf.ByteString.Empty }, deadline: conn.Deadline(), cancellationToken: ct);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.InvalidArgument)
            {
                throw PlanViolationReport.Report(ctx, e, source);
            }
            ctx.Info($"session {session.Id} created: plan {session.PlanName}, {session.Dots?.Total ?? 0} dots, profile {session.ProfileName}");
            if (HeadPositions(planJson) is { Count: > 0 } positions)
            {
                // A curved scalp is placed in head positions: the first one is the operator's to set before the start.
                ctx.Info($"this plan is placed in {positions.Count} head positions; the session holds after each, saying how to turn the head for the next. "
                    + $"First, position {positions[0].Number}: {positions[0].Instruction}");
            }
        }

        await MeasureSurfaceIfNeededAsync(ctx, conn, session.Id, surfaceOverride, ct, surfacePoints);
        await using var heartbeat = OperatorHeartbeat.Start(conn.Safety, ctx.Host.OperatorName, ctx.Host.Time, ct);
        if (!await heartbeat.WaitForFirstReplyAsync(FirstBeatTimeout, ctx.Host.Time))
        {
            ctx.Info("warning: the controller has not acknowledged the operator heartbeat yet");
        }

        if (checkFirst) ctx.Info("checking the whole program in the firmware's check mode ($C) before the first dot…");
        session = await conn.Sessions.StartAsync(new SessionRef
        {
            SessionId = session.Id,
            ConsoleId = heartbeat.ConsoleId,
            CheckFirst = checkFirst,
            CalibrationOverride = calibrationOverride is null ? null : new CalibrationOverride { Reason = calibrationOverride },
            SurfaceOverride = surfaceOverride ?? "",
        },
            deadline: checkFirst ? conn.Deadline(ControllerConnection.HomeTimeout) : conn.Deadline(), cancellationToken: ct);
        ctx.Info($"session {session.Id} started: {Formatting.StateName(session.State)}");

        var live = ctx.CanUseLiveView(noUi);
        var follower = new SessionFollower(ctx, conn, new FollowOptions(live, InterruptAlwaysStops: true, () => heartbeat.Latest, heartbeat.ConsoleId));
        var result = await follower.FollowAsync(session.Id, ct);
        if (heartbeat.Failure is { } failure) ctx.Info("note: the operator heartbeat failed during the session: " + failure.Message);
        return WriteSummary(ctx, result);
    }

    /// <summary>Prints the end summary (stdout; stderr with --json) and, with --json, the session object.</summary>
    public static int WriteSummary(CommandContext ctx, FollowResult result)
    {
        var exitCode = result.ExitCode;
        var machineLines = result.Final is not null || result.EmergencyStopSent ? SessionView.AfterTheEnd(result.Final, result.EmergencyStopSent, result.EmergencyStop) : null;
        var text = SessionView.Summary(result.Session, CliCommands.ControllerArg(ctx), machineLines);
        if (result.Detached) text = "stopped watching before the session ended\n" + text;
        if (result.HeldForOperator)
        {
            text = $"session held for the operator ({Or(result.Session.Reason)}); this console reads no keys, so nobody here can resume it: stopped following, the session stays {Formatting.StateName(result.Session.State)}\n" + text;
        }
        if (ctx.Json)
        {
            ctx.Stderr.WriteLine(text);
            var json = JsonOutput.Session(result.Session, exitCode);
            json["detached"] = result.Detached;
            json["heldForOperator"] = result.HeldForOperator;
            json["safety"] = result.Final?.Safety is { } safety ? JsonOutput.Message(safety) : null;
            json["machine"] = result.Final?.Machine is { } machine ? JsonOutput.Message(machine) : null;
            json["notRead"] = result.Final?.Problem;
            json["emergencyStop"] = result.EmergencyStopSent
                ? new System.Text.Json.Nodes.JsonObject { ["answered"] = result.EmergencyStop is not null, ["failed"] = result.EmergencyStop?.Failed ?? true, ["text"] = result.EmergencyStop?.Text }
                : null;
            ctx.WriteJson(json);
        }
        else
        {
            ctx.Stdout.WriteLine(text);
        }
        return exitCode;
    }

    private static string Or(string value) => string.IsNullOrEmpty(value) ? "?" : value;
}
