using System.Globalization;
using Microsoft.Extensions.Logging;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Machine;
using SmpRobot.Vision;
using SmpRobot.Vision.Calibration;

namespace SmpRobot.Controller.Calibration;

/// <summary>
/// The cameras the calibration procedures use. The gantry camera is opened on first use (rendering
/// set-up is not free, and most controllers never calibrate) and disposed with this.
/// </summary>
/// <param name="openGantryCamera">Opens the camera that sees the needle-head marker (and, in simulation, the touch plate); returns null when the controller has none.</param>
/// <param name="cameraId">Identity the calibrations are filed under (the tracked camera's, see <see cref="CameraIdentity"/>).</param>
public sealed class CalibrationCameras(Func<IFrameSource?> openGantryCamera, string cameraId) : IDisposable
{
    private readonly Lazy<IFrameSource?> _gantryCamera = new(openGantryCamera, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The camera that sees the needle-head marker; null when there is none.</summary>
    public IFrameSource? GantryCamera => _gantryCamera.Value;

    /// <summary>Identity the calibrations are filed under.</summary>
    public string CameraId => cameraId;

    public void Dispose()
    {
        if (_gantryCamera.IsValueCreated) _gantryCamera.Value?.Dispose();
    }
}

/// <summary>A gantry calibration as run: the stored record, the fit, and its pictures.</summary>
public sealed record GantryCalibrationOutcome(CalibrationRecord Record, GantryCalibration Result, IReadOnlyList<MarkerObservation> Observations, IReadOnlyList<string> Skipped,
    double Seconds, ReadOnlyMemory<byte> ResidualsPng, ReadOnlyMemory<byte> HistogramPng, bool Applied);

/// <summary>A drift check as run.</summary>
public sealed record DriftCheckOutcome(DriftCheckResult Result, string CalibrationId, ReadOnlyMemory<byte> ResidualsPng);

/// <summary>An intrinsics calibration as run.</summary>
public sealed record IntrinsicsOutcome(CalibrationRecord Record, IntrinsicsResult Result, IReadOnlyList<string> Refused, ReadOnlyMemory<byte> ViewErrorsPng);

/// <summary>Settings of a gantry calibration run.</summary>
public sealed record GantryCalibrationRequest
{
    /// <summary>Stops (default 25).</summary>
    public int Points { get; init; } = 25;

    /// <summary>Height levels, ≥ 2 (default 2).</summary>
    public int Heights { get; init; } = 2;

    /// <summary>Engineer's notes, stored.</summary>
    public string Notes { get; init; } = "";
}

/// <summary>
/// The engineer's calibration procedures on the machine: camera intrinsics from board views, the
/// camera-to-gantry mapping from a marker carried by the needle head, and the daily drift check.
/// <para>
/// Gantry moves. The machine must be homed and not e-stopped; a procedure holds the machine's lease
/// (<see cref="MachineLease"/>) while it moves it, so no session, jog or other procedure can start meanwhile. The needle drive is switched off (M5) first; every
/// move is a travel move (climb first, descend last, Z in single-digit relative steps) sent through
/// the safety supervisor's motion gate, followed by a G4 P0 sync, an Idle status and a settle time
/// (tracking.calibrationSettleMs of machine time). Nothing plunges.
/// </para>
/// <para>
/// Tip offset. A gantry that only translates cannot tell the needle tip's offset to the marker from
/// T_GC's translation (see <see cref="GantryCalibrator"/>). The offset comes from the profile
/// (tracking.needleTipInMarkerMm, from the head's drawing) when given; otherwise from tip touch-offs
/// on a touch plate the camera measures, which only the simulated camera offers for now (its
/// simulated engineer jogs the tip exactly onto the plate's corners); otherwise the run is refused.
/// </para>
/// </summary>
public sealed partial class CalibrationProcedures(
    GantryConnection gantry,
    SafetySupervisor safety,
    MachineReadiness readiness,
    MotionLink motion,
    LedgerStore ledger,
    MachineProfile profile,
    IHeadPoseSource headPose,
    CalibrationGate gate,
    CalibrationCameras cameras,
    TimeProvider time,
    ILogger<CalibrationProcedures> log)
{
    /// <summary>A gantry calibration is valid when its validation residuals stay within this (max), mm.</summary>
    public const double MaxValidationResidualMm = 0.25;

    /// <summary>…and at most this fraction of its stops are outliers.</summary>
    public const double MaxOutlierFraction = 0.2;

    /// <summary>An intrinsics calibration is valid when its RMS reprojection error is at most this, px.</summary>
    public const double MaxIntrinsicsRmsPx = 1.0;

    /// <summary>Fewest stops of a gantry calibration (a fifth are held out for validation, and validity needs 3).</summary>
    public const int MinPoints = 15;

    /// <summary>Views an intrinsics calibration collects by default: 40 (on the synthetic camera the focal length settles to ~0.4 px at 40 views, ~1.6 px at 14).</summary>
    public const int DefaultViews = 40;

    /// <summary>Default drift-check tolerance per point, mm.</summary>
    public const double DefaultDriftToleranceMm = 0.1;

    private readonly DotProgram _program = new(profile);
    private readonly Lock _cameraLock = new();

    /// <summary>The camera identity calibrations are filed under.</summary>
    public string CameraId => cameras.CameraId;

    /// <summary>
    /// Gives the tracking camera the newest valid intrinsics calibration of its identity, when it has none
    /// (a real camera started without --intrinsics). Returns the calibration's id, or null.
    /// </summary>
    public string? ApplyLatestIntrinsics()
    {
        if (headPose is not TrackedHeadPoseSource { HasIntrinsics: false } tracked) return null;
        var stored = ledger.LatestValidCalibration(CalibrationKind.Intrinsics, cameras.CameraId, profile.Name);
        if (stored is null)
        {
            Log.NoIntrinsics(log, cameras.CameraId);
            return null;
        }
        UseIntrinsics(tracked, stored);
        return stored.Id;
    }

    private void UseIntrinsics(TrackedHeadPoseSource tracked, CalibrationRecord stored)
    {
        var k = CalibrationJson.Read<IntrinsicsData>(stored.DataJson).ToIntrinsics();
        try
        {
            tracked.SetIntrinsics(k, $"calibration {stored.Id} of {stored.CreatedAt:u}");
            Log.TrackingWithIntrinsics(log, stored.Id, stored.CreatedAt);
        }
        catch (ArgumentException e)
        {
            Log.IntrinsicsDoNotFit(log, stored.Id, e.Message);
        }
    }

    /// <summary>Uses the newest valid gantry calibration (if any) in the tracked head-pose source; returns its id.</summary>
    public string? ApplyLatest()
    {
        var current = gate.Current();
        if (current is null) return null;
        Apply(CalibrationJson.Read<GantryCalibrationData>(current.DataJson).GantryFromCamera.ToTransform());
        Log.UsingGantryCalibration(log, current.Id, current.CreatedAt);
        return current.Id;
    }

    /// <summary>Runs the whole gantry calibration (stops, touch-offs, fit, store, use). See the class remarks.</summary>
    /// <remarks>When <paramref name="ct"/> is cancelled (its caller went away or asked to stop) the motion stops at once and nothing is stored.</remarks>
    public async Task<GantryCalibrationOutcome> CalibrateGantryAsync(GantryCalibrationRequest request, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        var volume = RequireVolume();
        if (request.Heights < 2) throw Invalid("a gantry calibration needs at least 2 heights");
        // 15 stops at least: a fifth of them (3) are held out to validate the fit.
        var fewest = Math.Max(MinPoints, 2 * request.Heights);
        if (request.Points < fewest || request.Points > 400) throw Invalid($"points must be {fewest}..400 (25 recommended), not {request.Points}");
        var camera = RequireCamera();
        var tipGiven = profile.Tracking.NeedleTipInMarkerMm;
        var touchPlate = camera as ISimulatedTouchPlate;
        if (tipGiven is null && touchPlate is null)
        {
            throw Precondition("the needle tip's offset to the head marker is unknown: give tracking.needleTipInMarkerMm (from the needle head's drawing) in the profile; this camera offers no touch plate for tip touch-offs");
        }
        var start = time.GetTimestamp();
        var stops = CalibrationPlan.Stops(volume, request.Points, request.Heights, _program.Grid);
        using var use = readiness.Take(MachineUse.Calibration, "gantry calibration", "run the gantry calibration");
        // A shutdown stops it as its caller's Ctrl+C does.
        var callerToken = ct;
        using var stopping = readiness.Lease.StopsAtShutdown(callerToken);
        ct = stopping.Token;
        using var activity = gantry.Activity.Begin("gantry calibration", stops.Count);
        try
        {
            var client = await PrepareAsync(ct);
            using var board = LoadBoard(profile.Tracking.CalibrationBoard);
            using var estimator = new BoardPoseEstimator(board, RequireIntrinsics(camera));
            var observations = new List<MarkerObservation>();
            var skipped = new List<string>();
            var position = (await client.QueryStatusAsync(ct)).MachinePosition;
            foreach (var stop in stops)
            {
                activity.Doing($"stop {activity.Progress.StepsDone + 1}: moving to {stop}");
                position = await MoveAsync(client, position, stop, ct);
                activity.Doing($"stop {activity.Progress.StepsDone + 1}: measuring the marker");
                var pose = MeasurePose(camera, estimator, ct);
                activity.StepDone();
                if (pose is null)
                {
                    skipped.Add($"no marker pose at {position}");
                    continue;
                }
                observations.Add(new MarkerObservation(position, pose.Value));
            }

            var touches = new List<TipTouch>();
            if (tipGiven is null && touchPlate is not null)
            {
                // Park above the volume, look at the plate, then touch its corners one by one.
                position = await MoveAsync(client, position, _program.Grid.Quantise(position with { Z = volume.Max.Z }), ct);
                touchPlate.ShowTouchPlate = true;
                try
                {
                    using var plateEstimator = new BoardPoseEstimator(touchPlate.PlateBoard, RequireIntrinsics(camera));
                    var platePose = MeasurePose(camera, plateEstimator, ct) ?? throw Precondition("the touch plate is not in view: no tip touch-off possible");
                    var touchPoints = touchPlate.TouchPoints().ToList();
                    activity.SetTotal(stops.Count + touchPoints.Count);
                    foreach (var point in touchPoints)
                    {
                        activity.Doing($"tip touch-off {activity.Progress.StepsDone - stops.Count + 1} of {touchPoints.Count}");
                        position = await MoveAsync(client, position, _program.Grid.Quantise(point.GantryMm), ct);
                        touches.Add(new TipTouch(position, platePose.Apply(touchPlate.PlateBoard.CornerInHead(point.CornerId))));
                        activity.StepDone();
                    }
                    position = await MoveAsync(client, position, _program.Grid.Quantise(position with { Z = volume.Max.Z }), ct);
                }
                finally
                {
                    touchPlate.ShowTouchPlate = false;
                }
            }

            if (observations.Count < Math.Max(6, request.Points / 2))
            {
                throw Precondition($"only {observations.Count} of {stops.Count} stops gave a marker pose ({string.Join("; ", skipped.Take(5))}): is the marker on the head and in view?");
            }
            var options = new GantryCalibrationOptions
            {
                TipOffsetInMarkerMm = tipGiven is null ? null : new Vec3(tipGiven.X, tipGiven.Y, tipGiven.Z),
            };
            GantryCalibration result;
            try
            {
                result = GantryCalibrator.Solve(observations, touches, options);
            }
            catch (ArgumentException e)
            {
                throw Precondition("the fit failed: " + e.Message);
            }
            var fit = result.MarkerFit;
            var outlierFraction = fit.OutlierIndices.Count / (double)observations.Count;
            var valid = fit.Validation.Count >= 3 && fit.Validation.MaxMm <= MaxValidationResidualMm && outlierFraction <= MaxOutlierFraction;
            var warnings = result.Warnings.Concat(skipped).ToList();
            if (!valid)
            {
                warnings.Add(string.Create(CultureInfo.InvariantCulture,
                    $"NOT valid: needs ≥ 3 validation points within {MaxValidationResidualMm} mm (max {fit.Validation.MaxMm:0.000} mm) and ≤ {MaxOutlierFraction:P0} outliers ({fit.OutlierIndices.Count} of {observations.Count})"));
            }
            var method = "charuco-marker kabsch+ransac, tip offset " + (result.TipOffsetSource switch
            {
                TipOffsetSource.TipTouch => "from tip touch-offs",
                TipOffsetSource.Given => "from the profile",
                _ => "assumed zero",
            });
            var data = new GantryCalibrationData(TransformData.Of(result.GantryFromCamera), CalibrationJson.Array(result.TipOffsetInMarkerMm), result.TipOffsetSource.ToString(),
                result.MarkerRotationSpreadDeg, [.. result.TipTouchResidualsMm], board.Spec.Name);
            var stats = new GantryStatsData(fit.Fit, fit.Validation,
                [.. fit.Points.Select(p => new StopData(p.Index, CalibrationJson.Array(p.ToMm), CalibrationJson.Array(p.FromMm), CalibrationJson.Array(p.ResidualMm), p.Role == PointRole.Validation, p.IsOutlier))],
                [.. fit.OutlierIndices], [.. warnings]);
            var notes = string.Join("; ", new[] { request.Notes.Trim() }.Where(n => n.Length > 0).Concat(warnings));
            // A calibration stopped part-way is never stored.
            ct.ThrowIfCancellationRequested();
            var record = ledger.SaveCalibration(CalibrationKind.Gantry, cameras.CameraId, profile.Name, method, CalibrationJson.Write(data), CalibrationJson.Write(stats),
                fit.Validation.RmsMm, fit.Validation.P95Mm, fit.Validation.MaxMm, observations.Count, notes, valid);
            if (valid) Apply(result.GantryFromCamera);
            var pictureNotes = new PictureOptions { Notes = [$"calibration {record.Id}", $"camera {record.Camera}, profile {record.ProfileName}", valid ? "valid" : "NOT valid"] };
            var (residualsPng, _) = CalibrationPictures.ResidualsPng(fit, pictureNotes);
            var histogramPng = CalibrationPictures.HistogramPng(fit, pictureNotes);
            var seconds = time.GetElapsedTime(start).TotalSeconds;
            Log.GantryCalibrated(log, record.Id, valid ? "valid" : "NOT valid", fit.Validation, seconds);
            return new GantryCalibrationOutcome(record, result, observations, skipped, seconds, residualsPng, histogramPng, valid);
        }
        catch (OperationCanceledException) when (StopsForCaller(ct))
        {
            await StopForCallerAsync("gantry calibration", activity, callerToken);
            throw;
        }
    }

    /// <summary>The start-of-day check: 5 stops measured against the current calibration; pass when every residual is within <paramref name="toleranceMm"/>.</summary>
    public async Task<DriftCheckOutcome> CheckDriftAsync(double toleranceMm, CancellationToken ct)
    {
        if (toleranceMm == 0) toleranceMm = DefaultDriftToleranceMm;
        if (!(toleranceMm > 0 && toleranceMm <= 5)) throw Invalid($"tolerance must be in (0, 5] mm, not {toleranceMm.ToString(CultureInfo.InvariantCulture)}");
        var volume = RequireVolume();
        var camera = RequireCamera();
        var current = gate.Current() ?? throw Precondition($"there is no valid camera-to-gantry calibration for camera {cameras.CameraId} on profile {profile.Name}: run `smp calibrate gantry` first");
        var data = CalibrationJson.Read<GantryCalibrationData>(current.DataJson);
        var gantryFromCamera = data.GantryFromCamera.ToTransform();
        var driftStops = DriftCheck.SuggestedPoints(volume.Min, volume.Max).Select(_program.Grid.Quantise).ToList();
        using var use = readiness.Take(MachineUse.Calibration, "drift check", "run the drift check");
        var callerToken = ct;
        using var stopping = readiness.Lease.StopsAtShutdown(callerToken);
        ct = stopping.Token;
        using var activity = gantry.Activity.Begin("drift check", driftStops.Count);
        try
        {
            var client = await PrepareAsync(ct);
            using var board = LoadBoard(profile.Tracking.CalibrationBoard);
            using var estimator = new BoardPoseEstimator(board, RequireIntrinsics(camera));
            var position = (await client.QueryStatusAsync(ct)).MachinePosition;
            var cameraPoints = new List<Vec3>();
            var gantryPoints = new List<Vec3>();
            foreach (var stop in driftStops)
            {
                activity.Doing($"stop {activity.Progress.StepsDone + 1}: moving to {stop}");
                position = await MoveAsync(client, position, stop, ct);
                var pose = MeasurePose(camera, estimator, ct) ?? throw Precondition($"no marker pose with the tip at {position}: is the marker on the head and in view?");
                cameraPoints.Add(pose.Apply(data.TipInMarker));
                gantryPoints.Add(position);
                activity.StepDone();
            }
            var result = DriftCheck.Check(gantryFromCamera, cameraPoints, gantryPoints, toleranceMm);
            ledger.Audit(null, result.Passed ? "drift-check-passed" : "drift-check-failed", $"calibration {current.Id}: {result.Summary}");
            var points = result.Points.Select(p => new PointResidual(p.Index, p.CameraMm, p.GantryMm, p.ResidualMm, PointRole.Validation, !p.Passed)).ToList();
            var (png, _) = CalibrationPictures.ResidualsPng(points, new PictureOptions { Title = "drift check against " + current.Id, Notes = [result.Summary] });
            return new DriftCheckOutcome(result, current.Id, png);
        }
        catch (OperationCanceledException) when (StopsForCaller(ct))
        {
            await StopForCallerAsync("drift check", activity, callerToken);
            throw;
        }
    }

    /// <summary>
    /// Intrinsics from <paramref name="views"/> views of the intrinsics board: "synthetic[@WxH]" renders
    /// views of the synthetic camera at poses covering the image and tilts; "file:DIR" reads a folder
    /// of images; "device:N[@WxH]" takes a frame about every second while the engineer moves the board.
    /// Stored (valid when RMS ≤ <see cref="MaxIntrinsicsRmsPx"/>) under the camera's identity.
    /// </summary>
    public async Task<IntrinsicsOutcome> CalibrateIntrinsicsAsync(string? cameraSpec, int views, string notes, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(notes);
        var spec = string.IsNullOrWhiteSpace(cameraSpec) ? DefaultIntrinsicsCamera() : cameraSpec.Trim();
        if (views == 0) views = DefaultViews;
        if (views is < 5 or > 200) throw Invalid($"views must be 5..200, not {views}");
        using var board = LoadBoard(profile.Tracking.IntrinsicsBoard);
        var refused = new List<string>();
        IntrinsicsCalibrator? calibrator = null;
        try
        {
            var kind = spec.Split(':', '@')[0].Trim().ToLowerInvariant();
            if (kind == "synthetic")
            {
                using var source = Open(spec);
                var truth = source.Intrinsics!;
                calibrator = new IntrinsicsCalibrator(board, truth.WidthPx, truth.HeightPx);
                using var scene = new SyntheticScene(SyntheticScenario.Still, truth, board, seed: 11);
                var poses = SyntheticCalibrationViews.Poses(truth, views);
                for (var i = 0; i < poses.Count; i++)
                {
                    ct.ThrowIfCancellationRequested();
                    using var image = scene.RenderAt(poses[i], i);
                    Keep(calibrator.AddView(image, "synthetic view " + (i + 1).ToString(CultureInfo.InvariantCulture)));
                }
            }
            else if (kind == "device" && headPose is TrackedHeadPoseSource holder && CameraIdentity.Of(holder.Frames.Description) == CameraIdentity.Of(spec))
            {
                // The tracker holds this camera (a device opens once): take its frames, about one a second while the engineer moves the board.
                long? lastSequence = null;
                for (var i = 0; i < views; i++)
                {
                    if (i > 0) await Task.Delay(DeviceViewInterval, time, ct);
                    var (image, sequence) = await NextTrackerFrameAsync(holder, lastSequence, ct);
                    using (image)
                    {
                        lastSequence = sequence;
                        calibrator ??= new IntrinsicsCalibrator(board, image.Width, image.Height);
                        Keep(calibrator.AddView(image, "frame " + sequence.ToString(CultureInfo.InvariantCulture)));
                    }
                }
            }
            else
            {
                using var source = Open(spec);
                var interval = kind == "device" ? DeviceViewInterval : TimeSpan.Zero;
                for (var i = 0; i < views; i++)
                {
                    using var frame = source.Read();
                    if (frame is null) break;
                    calibrator ??= new IntrinsicsCalibrator(board, frame.Image.Width, frame.Image.Height);
                    Keep(calibrator.AddView(frame.Image, kind == "file" ? "image " + (i + 1).ToString(CultureInfo.InvariantCulture) : "frame " + frame.Sequence.ToString(CultureInfo.InvariantCulture)));
                    if (interval > TimeSpan.Zero) await Task.Delay(interval, time, ct);
                }
            }
            if (calibrator is null) throw Precondition($"camera {spec} gave no images");
            IntrinsicsResult result;
            try
            {
                result = calibrator.Solve();
            }
            catch (InvalidOperationException e)
            {
                throw Precondition(e.Message + (refused.Count > 0 ? "; refused: " + string.Join("; ", refused.Take(5)) : ""));
            }
            var valid = result.RmsPx <= MaxIntrinsicsRmsPx;
            var hints = result.Coverage.Hints.ToList();
            var stats = new IntrinsicsStatsData(result.RmsPx, result.ViewsUsed, result.ViewsRejected,
                [.. result.Views.Select(v => new ViewData(v.Name, v.Corners, v.Status == ViewStatus.Used, v.RmsPx, v.Reason))], [.. hints]);
            var allNotes = string.Join("; ", new[] { notes.Trim() }.Where(n => n.Length > 0).Concat(hints).Concat(valid ? [] : [string.Create(CultureInfo.InvariantCulture, $"NOT valid: RMS {result.RmsPx:0.000} px > {MaxIntrinsicsRmsPx} px")]));
            var cameraId = CameraIdentity.Of(spec);
            var record = ledger.SaveCalibration(CalibrationKind.Intrinsics, cameraId, profile.Name, "charuco-views opencv calibrateCamera (k1 k2 p1 p2 k3)",
                CalibrationJson.Write(IntrinsicsData.Of(result.Intrinsics, board.Spec.Name)), CalibrationJson.Write(stats), result.RmsPx, double.NaN,
                result.Views.Where(v => v.Status == ViewStatus.Used).Select(v => v.RmsPx).DefaultIfEmpty(double.NaN).Max(), result.ViewsUsed, allNotes, valid);
            // A new calibration of the camera the tracker holds is used at once (a synthetic camera keeps its true intrinsics).
            if (valid && headPose is TrackedHeadPoseSource tracked && tracked.Frames.Intrinsics is null && CameraIdentity.Of(tracked.Frames.Description) == cameraId)
            {
                UseIntrinsics(tracked, record);
            }
            var png = CalibrationPictures.HistogramPng([.. result.Views.Where(v => v.Status == ViewStatus.Used).Select(v => v.RmsPx)], options: new PictureOptions
            {
                Title = "per-view RMS reprojection error",
                Unit = "px",
                Notes = [$"calibration {record.Id}", string.Create(CultureInfo.InvariantCulture, $"RMS {result.RmsPx:0.000} px over {result.ViewsUsed} views ({result.ViewsRejected} rejected)")],
            });
            return new IntrinsicsOutcome(record, result, refused, png);
        }
        finally
        {
            calibrator?.Dispose();
        }

        void Keep(ViewAddResult added)
        {
            if (!added.Accepted) refused.Add(added.Message);
        }
    }

    /// <summary>Time between the views an intrinsics calibration takes from a camera (the engineer moves the board meanwhile).</summary>
    public static readonly TimeSpan DeviceViewInterval = TimeSpan.FromSeconds(1);

    /// <summary>A frame of the tracker's camera newer than <paramref name="after"/>; waits for the next one (bounded) when there is none yet.</summary>
    private async Task<(OpenCvSharp.Mat Image, long Sequence)> NextTrackerFrameAsync(TrackedHeadPoseSource tracked, long? after, CancellationToken ct)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5), time);
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        while (true)
        {
            var next = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            void OnFrame(object? sender, EventArgs e) => next.TrySetResult();
            tracked.PoseUpdated += OnFrame;
            try
            {
                if (tracked.CopyLastFrame() is { } frame)
                {
                    if (after is null || frame.Sequence != after) return frame;
                    frame.Image.Dispose();
                }
                await next.Task.WaitAsync(bound.Token);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw Precondition($"camera {tracked.Frames.Description} delivered no new frame within 5 s");
            }
            finally
            {
                tracked.PoseUpdated -= OnFrame;
            }
        }
    }

    private string DefaultIntrinsicsCamera()
    {
        if (cameras.CameraId != "none") return cameras.CameraId;
        if (cameras.CameraId.StartsWith("synthetic", StringComparison.Ordinal)) return cameras.CameraId;
        throw Invalid("give the camera to calibrate (--camera device:N, file:DIR or synthetic)");
    }

    private IFrameSource Open(string spec)
    {
        try
        {
            return FrameSources.Parse(spec, time);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException)
        {
            throw Invalid(e.Message);
        }
    }

    private void Apply(RigidTransform gantryFromCamera)
    {
        if (headPose is TrackedHeadPoseSource tracked) tracked.SetGantryFromCamera(gantryFromCamera);
    }

    private CalibrationVolume RequireVolume() =>
        profile.Tracking.CalibrationVolume ?? throw Precondition($"profile '{profile.Name}' has no tracking.calibrationVolume (where the needle-head marker stays in view)");

    private IFrameSource RequireCamera() =>
        cameras.GantryCamera ?? throw Precondition("this controller has no calibration camera (only the simulated machine has one so far; see docs/architecture.md)");

    private CameraIntrinsics RequireIntrinsics(IFrameSource camera)
    {
        if (ledger.LatestValidCalibration(CalibrationKind.Intrinsics, cameras.CameraId, profile.Name) is { } stored)
        {
            var k = CalibrationJson.Read<IntrinsicsData>(stored.DataJson).ToIntrinsics();
            if (camera.Intrinsics is null || (camera.Intrinsics.WidthPx == k.WidthPx && camera.Intrinsics.HeightPx == k.HeightPx)) return k;
        }
        return camera.Intrinsics ?? throw Precondition($"camera {cameras.CameraId} has no intrinsics: run `smp calibrate intrinsics` first");
    }

    private static MarkerBoard LoadBoard(string relativePath)
    {
        try
        {
            return MarkerBoard.Load(Path.Combine(HardwarePaths.HardwareDirectory(), relativePath));
        }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException)
        {
            throw Precondition("calibration board: " + e.Message);
        }
    }

    /// <summary>
    /// Whether a cancellation that reached a procedure is its caller's (Ctrl+C in smp, or the client went
    /// away) and the machine can still be stopped by the controller: then the procedure stops the motion
    /// before it gives up its lease (a latched e-stop has stopped it already).
    /// </summary>
    private bool StopsForCaller(CancellationToken ct) => ct.IsCancellationRequested && gantry.IsConnected && !safety.IsLatched;

    /// <summary>
    /// The move under way is not left to finish: feed hold, queue flushed, needle straight up (the
    /// supervisor's motion-hold stop). Runs while the procedure still holds the machine's lease and shows
    /// as its activity, so nothing else can start moving the machine until the stop is done, and a console
    /// that waits for the activity to end reads the machine after the stop, not before it.
    /// </summary>
    /// <remarks>
    /// Stopped by a shutdown rather than by its caller (<paramref name="callerToken"/> not cancelled), it throws a
    /// refusal that says so, instead of the caller's cancellation.
    /// </remarks>
    private async Task StopForCallerAsync(string what, ActivityScope activity, CancellationToken callerToken)
    {
        activity.Doing("stopping: feed hold, queue flushed, needle up");
        var cause = readiness.Lease.StopCause;
        var error = await safety.HoldAndRetractAsync($"{what} {cause}", CancellationToken.None);
        var outcome = error.Length == 0 ? "motion stopped (feed hold, queue flushed, needle up); nothing stored" : "stopping the motion failed: " + error;
        Log.Stopped(log, what, cause, outcome);
        ledger.Audit(null, "calibration-stopped", $"{what} {cause}: {outcome}");
        if (!callerToken.IsCancellationRequested) throw new RefusedException(RefusalKind.FailedPrecondition, $"{what} {cause}: {outcome}");
    }

    /// <summary>Once the lease is held: checks the gantry is idle and switches the needle drive off; returns the client.</summary>
    private async Task<GrblClient> PrepareAsync(CancellationToken ct)
    {
        var client = gantry.RequireClient();
        var status = await client.QueryStatusAsync(ct);
        if (!status.IsIdle) throw Precondition($"the gantry is {status.State}, not Idle");
        // Needle drive off and absolute millimetres before anything moves.
        await RefusedOnErrorAsync(() => motion.SetUpAsync([MachineLines.DriveOff, MachineLines.AbsoluteMm], ct));
        return client;
    }

    /// <summary>Travels to <paramref name="target"/> (on the grid), waits for Idle and the settle time; returns the position the firmware reports.</summary>
    private async Task<Vec3> MoveAsync(GrblClient client, Vec3 from, Vec3 target, CancellationToken ct)
    {
        if (!profile.InEnvelope(target)) throw Precondition($"calibration stop {target} is outside the machine envelope");
        await RefusedOnErrorAsync(() => motion.MoveAndSyncAsync(_program.Travel(from, target), ct));
        GrblStatus status;
        var waited = time.GetTimestamp();
        while (true)
        {
            status = await client.QueryStatusAsync(ct);
            if (status.IsIdle) break;
            if (status.IsAlarm || status.IsHold) throw Precondition($"the gantry went to {status.State} during the calibration");
            if (time.GetElapsedTime(waited) > TimeSpan.FromSeconds(10)) throw new TimeoutException($"the gantry did not become Idle at {target} within 10 s");
            await Task.Delay(TimeSpan.FromMilliseconds(5), time, ct);
        }
        // Only the sync's ok is awaited: a travel line the firmware refused shows here, as a stop not reached.
        if (status.MachinePosition.DistanceTo(target) > PositionReportToleranceMm)
        {
            throw Precondition($"the gantry stopped at {status.MachinePosition}, not at the calibration stop {target}: a travel line was refused or changed on the wire");
        }
        var settle = TimeSpan.FromMilliseconds(profile.Tracking.CalibrationSettleMs / gantry.TimeScale);
        if (settle > TimeSpan.Zero) await Task.Delay(settle, time, ct);
        return status.MachinePosition;
    }

    /// <summary>Status reports carry 3 decimals: a reached stop may differ from its target by their rounding, nothing more, mm.</summary>
    private const double PositionReportToleranceMm = 0.002;

    /// <summary>A line the firmware refuses is a refusal of the procedure (the operator sees the firmware's error).</summary>
    private static async Task RefusedOnErrorAsync(Func<Task> move)
    {
        try
        {
            await move();
        }
        catch (LineRefusedException e)
        {
            throw Precondition(e.Message);
        }
    }

    /// <summary>
    /// The median marker pose over tracking.calibrationFramesPerStop frames (component-wise median of
    /// the positions, orientation of the frame nearest to it); null when fewer than half the frames give a pose.
    /// </summary>
    private RigidTransform? MeasurePose(IFrameSource camera, BoardPoseEstimator estimator, CancellationToken ct)
    {
        var wanted = profile.Tracking.CalibrationFramesPerStop;
        var poses = new List<RigidTransform>(wanted);
        lock (_cameraLock)
        {
            for (var i = 0; i < wanted; i++)
            {
                // A caller's stop is seen between frames, not only at the next move.
                ct.ThrowIfCancellationRequested();
                using var frame = camera.Read();
                if (frame is null) break;
                if (estimator.Estimate(frame.Image, frame.CapturedTimestamp) is { } pose) poses.Add(pose.CameraFromHead);
            }
        }
        if (poses.Count == 0 || poses.Count * 2 < wanted) return null;
        var median = new Vec3(Median(poses.Select(p => p.Translation.X)), Median(poses.Select(p => p.Translation.Y)), Median(poses.Select(p => p.Translation.Z)));
        var nearest = poses.MinBy(p => p.Translation.DistanceTo(median));
        return Rotations.FromMatrix(Rotations.RotationMatrix(nearest), median);
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        var m = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
    }

    private static RefusedException Precondition(string message) => new(RefusalKind.FailedPrecondition, message);

    private static RefusedException Invalid(string message) => new(RefusalKind.InvalidArgument, message);

    /// <summary>Log messages (source-generated).</summary>
    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Warning, Message = "Camera {Camera} has no intrinsics: the head is not tracked and sessions are refused until `smp calibrate intrinsics` or --intrinsics FILE")]
        public static partial void NoIntrinsics(ILogger log, string camera);

        [LoggerMessage(Level = LogLevel.Information, Message = "Tracking with intrinsics calibration {Id} of {CreatedAt:u}")]
        public static partial void TrackingWithIntrinsics(ILogger log, string id, DateTimeOffset createdAt);

        [LoggerMessage(Level = LogLevel.Warning, Message = "Intrinsics calibration {Id} does not fit the camera: {Message}")]
        public static partial void IntrinsicsDoNotFit(ILogger log, string id, string message);

        [LoggerMessage(Level = LogLevel.Information, Message = "Using camera-to-gantry calibration {Id} of {CreatedAt:u}")]
        public static partial void UsingGantryCalibration(ILogger log, string id, DateTimeOffset createdAt);

        [LoggerMessage(Level = LogLevel.Information, Message = "Gantry calibration {Id}: {Valid}, validation {Stats}, {Seconds:0.0} s")]
        public static partial void GantryCalibrated(ILogger log, string id, string valid, ResidualStats stats, double seconds);

        [LoggerMessage(Level = LogLevel.Warning, Message = "The {What} was {Cause}: {Outcome}")]
        public static partial void Stopped(ILogger log, string what, string cause, string outcome);
    }
}
