using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using SmpRobot.Geometry;

namespace SmpRobot.Machine;

/// <summary>Per-axis values (X, Y, Z).</summary>
public sealed record AxisValues(double X, double Y, double Z)
{
    /// <summary>Value for axis index 0..2.</summary>
    public double this[int axis] => axis switch { 0 => X, 1 => Y, 2 => Z, _ => throw new ArgumentOutOfRangeException(nameof(axis)) };
}

/// <summary>Needle limits: depth below the skin surface and dwell at depth.</summary>
public sealed record NeedleLimits(double MinDepthMm, double MaxDepthMm, double MinDwellMs, double MaxDwellMs, double SpindleSpeed);

/// <summary>
/// Pose of the head frame H in gantry frame G for a still head (a practice pad or a fixed head rest):
/// p_G = R_z(yawDeg) · p_H + origin. Replaced by live tracking in a later issue.
/// </summary>
public sealed record FixedHeadPose(double OriginXMm, double OriginYMm, double OriginZMm, double YawDeg)
{
    /// <summary>T_GH as a rigid transform.</summary>
    public RigidTransform ToTransform() => RigidTransform.FromYawDegrees(YawDeg, new Vec3(OriginXMm, OriginYMm, OriginZMm));
}

/// <summary>A rigid mounting: translation (mm) then rotation given as a rotation vector in degrees (axis × angle).</summary>
public sealed record Mounting(AxisValues TranslationMm, AxisValues RotationVectorDeg)
{
    /// <summary>As a rigid transform.</summary>
    public RigidTransform ToTransform() => Rotations.FromRotationVector(
        new Vec3(RotationVectorDeg.X, RotationVectorDeg.Y, RotationVectorDeg.Z) * (Math.PI / 180), new Vec3(TranslationMm.X, TranslationMm.Y, TranslationMm.Z));
}

/// <summary>A box of gantry positions, mm.</summary>
public sealed record CalibrationVolume(AxisValues MinMm, AxisValues MaxMm)
{
    /// <summary>Lower corner.</summary>
    public Vec3 Min => new(MinMm.X, MinMm.Y, MinMm.Z);

    /// <summary>Upper corner.</summary>
    public Vec3 Max => new(MaxMm.X, MaxMm.Y, MaxMm.Z);
}

/// <summary>
/// Head tracking: the camera, where it is mounted, the marker board the head wears, and how a
/// session holds and resumes when following the head is not safe. The gates' thresholds
/// (poseMaxAgeMs, minPoseQuality, maxHeadSpeedMmPerS) are top-level profile values.
/// </summary>
public sealed record TrackingSettings
{
    /// <summary>Default camera of smp-controller (<c>--camera</c>): "none" (a fixed head, no tracking), "device:N[@WxH]", "file:PATH", "synthetic[:SCENARIO]". Default "none".</summary>
    public string Camera { get; init; } = "none";

    /// <summary>Marker board worn by the head, relative to the hardware folder. Default boards/head-charuco-5x4.json.</summary>
    public string Board { get; init; } = "boards/head-charuco-5x4.json";

    /// <summary>T_GC: where the camera is, in gantry coordinates (until a calibration replaces it).</summary>
    public Mounting? GantryFromCamera { get; init; }

    /// <summary>After a hold, tracking must have been good this long before the session goes on, ms. Default 500.</summary>
    public double SettleMs { get; init; } = 500;

    /// <summary>A hold that lasts longer than this pauses the session for the operator, s. Default 120.</summary>
    public double MaxHoldSeconds { get; init; } = 120;

    /// <summary>Verify-before-plunge tolerance for a tracked (moving) head, mm: the target predicted for the moment the needle reaches depth must lie this close to the hover point. Default 0.06.</summary>
    public double AimToleranceMm { get; init; } = 0.06;

    /// <summary>Corrections tried before a target that keeps moving holds the session. Default 8.</summary>
    public int MaxAimCorrections { get; init; } = 8;

    /// <summary>While holding, the needle waits this far above its hover point, mm (a head that comes up must not meet it). Default 3.</summary>
    public double HoldClearanceMm { get; init; } = 3;

    /// <summary>Marker board carried by the needle head for the camera-to-gantry calibration, relative to the hardware folder. Default boards/needle-charuco-6x4.json.</summary>
    public string CalibrationBoard { get; init; } = "boards/needle-charuco-6x4.json";

    /// <summary>ChArUco board for the intrinsics calibration, relative to the hardware folder. Default boards/intrinsics-charuco-9x7.json.</summary>
    public string IntrinsicsBoard { get; init; } = "boards/intrinsics-charuco-9x7.json";

    /// <summary>
    /// Box of needle-tip positions (gantry mm) the camera-to-gantry calibration and the drift check
    /// visit: where the head marker stays fully in the camera's view. Null: calibration is refused.
    /// </summary>
    public CalibrationVolume? CalibrationVolume { get; init; }

    /// <summary>
    /// The needle tip in the needle-head marker's frame, mm, from the head's drawing. When null, the
    /// calibration needs tip touch-offs (only the simulated touch plate offers them so far).
    /// </summary>
    public AxisValues? NeedleTipInMarkerMm { get; init; }

    /// <summary>A tracked session refuses to start with a gantry calibration older than this, hours. Default 24.</summary>
    public double CalibrationMaxAgeHours { get; init; } = 24;

    /// <summary>After each calibration stop the gantry is idle this long (machine time) before the marker is measured, ms. Default 300.</summary>
    public double CalibrationSettleMs { get; init; } = 300;

    /// <summary>Marker poses per stop; the stop's position is their component-wise median. Default 5.</summary>
    public int CalibrationFramesPerStop { get; init; } = 5;

    /// <summary>Adds to <paramref name="errors"/> a message for each value out of range.</summary>
    internal void Check(List<string> errors)
    {
        if (string.IsNullOrWhiteSpace(Camera)) errors.Add("tracking.camera must name a camera or \"none\"");
        if (!(SettleMs >= 0 && SettleMs <= 60000)) errors.Add("tracking.settleMs must be in [0, 60000]");
        if (!(MaxHoldSeconds > 0 && MaxHoldSeconds <= 3600)) errors.Add("tracking.maxHoldSeconds must be in (0, 3600]");
        if (!(AimToleranceMm > 0 && AimToleranceMm <= 0.5)) errors.Add("tracking.aimToleranceMm must be in (0, 0.5]");
        if (MaxAimCorrections is < 1 or > 50) errors.Add("tracking.maxAimCorrections must be in [1, 50]");
        if (!(HoldClearanceMm >= 0 && HoldClearanceMm <= 9)) errors.Add("tracking.holdClearanceMm must be in [0, 9]");
        if (Camera.Trim() != "none" && GantryFromCamera is null) errors.Add("tracking.gantryFromCamera is required with a camera");
        if (!(CalibrationMaxAgeHours > 0 && CalibrationMaxAgeHours <= 24 * 365)) errors.Add("tracking.calibrationMaxAgeHours must be in (0, 8760]");
        if (!(CalibrationSettleMs >= 0 && CalibrationSettleMs <= 10000)) errors.Add("tracking.calibrationSettleMs must be in [0, 10000]");
        if (CalibrationFramesPerStop is < 1 or > 30) errors.Add("tracking.calibrationFramesPerStop must be in [1, 30]");
        if (CalibrationVolume is { } v && !(v.MinMm.X < v.MaxMm.X && v.MinMm.Y < v.MaxMm.Y && v.MinMm.Z < v.MaxMm.Z)) errors.Add("tracking.calibrationVolume needs min < max on every axis");
    }
}

/// <summary>
/// A machine profile (hardware/profiles/*.json): kinematic limits of the gantry, its envelope,
/// needle limits, plan limits and safety timings. Machine frame G is the firmware's: X/Y horizontal,
/// Z up (the needle rises with +Z), and where the envelope lies follows from the homing settings
/// exactly as grbl 1.1 sets it (see <see cref="Envelope"/>): by default all travel is in negative
/// space, [−maxTravel, 0], and homing ends at −pull-off on each axis.
/// </summary>
public sealed record MachineProfile
{
    public required string Name { get; init; }
    public string Description { get; init; } = "";
    /// <summary>Firmware $100-$102.</summary>
    public required AxisValues StepsPerMm { get; init; }
    /// <summary>Firmware $110-$112, mm/min.</summary>
    public required AxisValues MaxRateMmPerMin { get; init; }
    /// <summary>Firmware $120-$122, mm/s².</summary>
    public required AxisValues AccelerationMmPerS2 { get; init; }
    /// <summary>Firmware $130-$132, mm.</summary>
    public required AxisValues MaxTravelMm { get; init; }
    /// <summary>Firmware $20.</summary>
    public bool SoftLimits { get; init; } = true;
    /// <summary>Firmware $22.</summary>
    public bool HomingEnabled { get; init; } = true;
    /// <summary>
    /// Firmware $23, the homing direction invert mask: bit 0 X, bit 1 Y, bit 2 Z. A clear bit homes
    /// the axis towards +, a set bit towards −. Default 0 (grbl's). Z must home up (bit 2 clear): the
    /// homing cycle starts with Z to take the needle away from the skin.
    /// </summary>
    public int HomingDirectionMask { get; init; }
    /// <summary>Firmware $27, how far homing backs off the switches, mm. Default 1 (grbl's).</summary>
    public double HomingPullOffMm { get; init; } = 1.0;
    /// <summary>
    /// True when the board's grbl was built with HOMING_FORCE_SET_ORIGIN (config.h): homing then sets
    /// every axis to 0, and the soft limits lie on the side the axis homed from. Default false (the
    /// default build). Not a $ setting: it cannot be read from the board, the profile must say it.
    /// </summary>
    public bool HomingForceSetOrigin { get; init; }
    /// <summary>Firmware $10, status report mask: bit 0 machine position, bit 1 buffer state. Default 3.</summary>
    public int StatusReportMask { get; init; } = 3;
    /// <summary>Needle tip height above the skin surface while travelling between dots, mm.</summary>
    public double HoverHeightMm { get; init; } = 2.0;
    /// <summary>Feed for travel at hover height, mm/min (capped by the axis limits).</summary>
    public double TravelFeedMmPerMin { get; init; } = 3000;
    /// <summary>Feed for plunge and retract, mm/min (capped by the axis limits).</summary>
    public double PlungeFeedMmPerMin { get; init; } = 600;
    public required NeedleLimits Needle { get; init; }
    /// <summary>
    /// Largest angle between the needle (the machine's Z) and the skin normal at a dot, degrees. Default 15:
    /// beyond it the tip lands noticeably beside its target and the depth along the skin shrinks (at 20° a
    /// 1 mm plunge lands 0.34 mm aside and 6 % shallow). Plans from designs carry the normals and head
    /// positions (patches) that keep to it.
    /// </summary>
    public double MaxNeedleTiltDeg { get; init; } = 15;
    /// <summary>
    /// A session re-checks the measured scalp with one probe after every this many dots placed on a surface
    /// registration (at the next dot's skin, needle drive off), and holds when the skin is not where the
    /// registration puts it. 0 turns the re-check off. Default 150: a few probes of about 3 s in a session of a
    /// thousand dots, so a board that slipped or a probe wire that was cut is found within minutes.
    /// </summary>
    public int SurfaceRecheckEveryDots { get; init; } = 150;
    /// <summary>
    /// Largest distance along the skin normal between a re-check's contact and the registered surface, mm.
    /// Default 0.15: the largest residual a registration's own contacts may have (one contact on a tracked head
    /// carries the pose's noise; the registration's RMS is held to 0.05).
    /// </summary>
    public double SurfaceRecheckToleranceMm { get; init; } = 0.15;
    /// <summary>Minimum distance between any two dots of a plan, mm (XY in head frame).</summary>
    public double MinDotSpacingMm { get; init; } = 0.5;
    /// <summary>Largest plan accepted, dots.</summary>
    public int MaxDots { get; init; } = 30000;
    /// <summary>Largest plan file accepted, bytes.</summary>
    public long MaxPlanBytes { get; init; } = 8 * 1024 * 1024;
    /// <summary>Pigment ids the machine is loaded with.</summary>
    public required IReadOnlyList<string> Pigments { get; init; }
    /// <summary>
    /// A running session holds (mid-dot too) when its console's last heartbeat is older than this,
    /// ms. Default 400: the console beats every 100 ms, so three beats may be late or lost, and the
    /// hold comes within about 0.43 s of the last beat (the session's watchdog looks every 25 ms),
    /// under the 0.5 s bound (./build.sh bench deadman).
    /// </summary>
    public double DeadManTimeoutMs { get; init; } = 400;
    /// <summary>Verify-before-plunge tolerance between the commanded and the re-aimed target, mm.</summary>
    public double VerifyToleranceMm { get; init; } = 0.02;
    /// <summary>Status poll rate while running, Hz (grbl: ≤ 10).</summary>
    public double StatusPollHz { get; init; } = 10;
    /// <summary>Firmware receive buffer size, bytes (grbl: 128).</summary>
    public int RxBufferBytes { get; init; } = 128;
    /// <summary>Firmware planner size, blocks (grbl: 15 usable).</summary>
    public int PlannerBlocks { get; init; } = 15;
    /// <summary>A pose older than this (from frame capture to the decision) holds the session, ms.</summary>
    public double PoseMaxAgeMs { get; init; } = 100;
    /// <summary>Tracking quality (0..1) below which the session holds.</summary>
    public double MinPoseQuality { get; init; } = 0.5;
    /// <summary>Head speed above which the session holds, mm/s.</summary>
    public double MaxHeadSpeedMmPerS { get; init; } = 5;
    /// <summary>Head pose for still-head sessions.</summary>
    public required FixedHeadPose FixedHead { get; init; }
    /// <summary>Head tracking (camera, mounting, hold and resume); defaults to no camera.</summary>
    public TrackingSettings Tracking { get; init; } = new();
    /// <summary>Optional GPIO e-stop and door inputs of the controller host; null = none (hardware/WIRING.md).</summary>
    public GpioInputs? Gpio { get; init; }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        NumberHandling = JsonNumberHandling.Strict,
    };

    /// <summary>Loads and checks a profile file; throws <see cref="InvalidDataException"/> with a clear message.</summary>
    public static MachineProfile Load(string path)
    {
        if (!File.Exists(path))
        {
            throw new InvalidDataException($"machine profile '{path}' does not exist");
        }
        return Parse(File.ReadAllText(path), $"'{path}'");
    }

    /// <summary>Parses and checks a profile's JSON text; <paramref name="source"/> names it in errors.</summary>
    public static MachineProfile Parse(string json, string source)
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            var profile = JsonSerializer.Deserialize<MachineProfile>(json, JsonOptions)
                ?? throw new InvalidDataException($"machine profile {source} is empty");
            profile.Check();
            return profile;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"machine profile {source} is not valid: {e.Message}", e);
        }
    }

    /// <summary>Throws <see cref="InvalidDataException"/> when a value is out of its physical range.</summary>
    public void Check()
    {
        var errors = new List<string>();
        for (var a = 0; a < 3; a++)
        {
            var axis = "XYZ"[a];
            if (!(StepsPerMm[a] > 0)) errors.Add($"stepsPerMm.{axis} must be > 0");
            if (!(MaxRateMmPerMin[a] > 0)) errors.Add($"maxRateMmPerMin.{axis} must be > 0");
            if (!(AccelerationMmPerS2[a] > 0)) errors.Add($"accelerationMmPerS2.{axis} must be > 0");
            if (!(MaxTravelMm[a] > 0)) errors.Add($"maxTravelMm.{axis} must be > 0");
        }
        if (HomingDirectionMask is < 0 or > 7) errors.Add("homingDirectionMask must be a 3-bit axis mask (0-7: bit 0 X, bit 1 Y, bit 2 Z)");
        if ((HomingDirectionMask & 4) != 0) errors.Add("homingDirectionMask must home Z up (bit 2 clear): homing starts with Z to take the needle away from the skin");
        if (!(HomingPullOffMm >= 0 && HomingPullOffMm < 0.5 * Math.Min(MaxTravelMm.X, Math.Min(MaxTravelMm.Y, MaxTravelMm.Z)))) errors.Add("homingPullOffMm must be >= 0 and less than half the shortest travel");
        if (StatusReportMask != 3) errors.Add("statusReportMask must be 3 (machine position and buffer state in every status report: the controller reads both)");
        if (SoftLimits && !HomingEnabled) errors.Add("softLimits needs homingEnabled (grbl refuses $20=1 without $22=1: error:10)");
        if (!(Needle.MinDepthMm > 0 && Needle.MaxDepthMm >= Needle.MinDepthMm)) errors.Add("needle depth limits must satisfy 0 < min <= max");
        if (!(Needle.MinDwellMs >= 0 && Needle.MaxDwellMs >= Needle.MinDwellMs)) errors.Add("needle dwell limits must satisfy 0 <= min <= max");
        if (!(HoverHeightMm > 0)) errors.Add("hoverHeightMm must be > 0");
        if (!(TravelFeedMmPerMin > 0) || !(PlungeFeedMmPerMin > 0)) errors.Add("feeds must be > 0");
        if (!(MinDotSpacingMm > 0)) errors.Add("minDotSpacingMm must be > 0");
        if (!(MaxNeedleTiltDeg > 0 && MaxNeedleTiltDeg <= 45)) errors.Add("maxNeedleTiltDeg must be in (0, 45]");
        if (SurfaceRecheckEveryDots < 0) errors.Add("surfaceRecheckEveryDots must be >= 0 (0: no re-check)");
        if (!(SurfaceRecheckToleranceMm > 0 && SurfaceRecheckToleranceMm <= 1)) errors.Add("surfaceRecheckToleranceMm must be in (0, 1]");
        if (MaxDots <= 0 || MaxPlanBytes <= 0) errors.Add("maxDots and maxPlanBytes must be > 0");
        if (!(DeadManTimeoutMs >= 150 && DeadManTimeoutMs <= 5000)) errors.Add("deadManTimeoutMs must be in [150, 5000] (the console beats every 100 ms)");
        if (!(VerifyToleranceMm > 0)) errors.Add("verifyToleranceMm must be > 0");
        if (!(StatusPollHz > 0 && StatusPollHz <= 50)) errors.Add("statusPollHz must be in (0, 50]");
        if (RxBufferBytes < 32 || PlannerBlocks < 2) errors.Add("rxBufferBytes must be >= 32 and plannerBlocks >= 2");
        if (Pigments.Count == 0) errors.Add("pigments must name at least one pigment");
        try { Gpio?.Check(); } catch (InvalidDataException e) { errors.Add(e.Message); }
        if (!(PoseMaxAgeMs > 0 && PoseMaxAgeMs <= 1000)) errors.Add("poseMaxAgeMs must be in (0, 1000]");
        if (!(MinPoseQuality >= 0 && MinPoseQuality <= 1)) errors.Add("minPoseQuality must be in [0, 1]");
        if (!(MaxHeadSpeedMmPerS > 0)) errors.Add("maxHeadSpeedMmPerS must be > 0");
        Tracking.Check(errors);
        if (errors.Count > 0)
        {
            throw new InvalidDataException($"machine profile '{Name}' is not valid: {string.Join("; ", errors)}");
        }
    }

    /// <summary>True when homing moves axis <paramref name="axis"/> (0 X, 1 Y, 2 Z) towards − ($23 bit set).</summary>
    public bool HomesTowardsMinus(int axis) => (HomingDirectionMask & (1 << axis)) != 0;

    /// <summary>
    /// Where grbl 1.1's soft limits allow targets after homing, per axis, mm. Without
    /// HOMING_FORCE_SET_ORIGIN every axis is [−maxTravel, 0] whichever way it homes (grbl's machine
    /// space is all negative). With it, an axis that homes towards − is [0, maxTravel] and one that
    /// homes towards + is [−maxTravel, 0].
    /// </summary>
    public (Vec3 Min, Vec3 Max) Envelope
    {
        get
        {
            double Min(int a) => HomingForceSetOrigin && HomesTowardsMinus(a) ? 0 : -MaxTravelMm[a];
            double Max(int a) => HomingForceSetOrigin && HomesTowardsMinus(a) ? MaxTravelMm[a] : 0;
            return (new Vec3(Min(0), Min(1), Min(2)), new Vec3(Max(0), Max(1), Max(2)));
        }
    }

    /// <summary>True when <paramref name="p"/> lies inside the <see cref="Envelope"/> (bounds included).</summary>
    public bool InEnvelope(Vec3 p)
    {
        const double tolerance = 1e-9;
        var (min, max) = Envelope;
        return p.IsFinite
            && p.X >= min.X - tolerance && p.X <= max.X + tolerance
            && p.Y >= min.Y - tolerance && p.Y <= max.Y + tolerance
            && p.Z >= min.Z - tolerance && p.Z <= max.Z + tolerance;
    }

    /// <summary>The envelope as text for messages, e.g. "x −200..0, y −200..0, z −40..0 mm".</summary>
    public string EnvelopeText()
    {
        var (min, max) = Envelope;
        static string F(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);
        return $"x {F(min.X)}..{F(max.X)}, y {F(min.Y)}..{F(max.Y)}, z {F(min.Z)}..{F(max.Z)} mm";
    }

    /// <summary>The highest Z the needle may be raised to (the top of the envelope), mm.</summary>
    public double TopZMm => Envelope.Max.Z;

    /// <summary>
    /// The machine position grbl 1.1 reports right after a homing cycle: 0 with HOMING_FORCE_SET_ORIGIN;
    /// otherwise −pull-off on an axis that homes towards + and −maxTravel + pull-off on one that homes
    /// towards −.
    /// </summary>
    public Vec3 HomePosition
    {
        get
        {
            double Home(int a) => HomingForceSetOrigin ? 0 : HomesTowardsMinus(a) ? -MaxTravelMm[a] + HomingPullOffMm : -HomingPullOffMm;
            return new Vec3(Home(0), Home(1), Home(2));
        }
    }

    /// <summary>Where the homing switch of each axis trips, in the machine frame after homing: the home position pulled back onto the switch.</summary>
    public Vec3 HomingSwitchPosition
    {
        get
        {
            var home = HomePosition;
            double Back(int a) => HomesTowardsMinus(a) ? -HomingPullOffMm : HomingPullOffMm;
            return new Vec3(home.X + Back(0), home.Y + Back(1), home.Z + Back(2));
        }
    }
}
