using SmpRobot.Geometry;
namespace SmpRobot.Vision;

/// <summary>Tuning of <see cref="PoseFilter"/>. Defaults suit a 30 fps camera about 110 mm from a 30 mm board.</summary>
public sealed record PoseFilterOptions
{
    /// <summary>Standard deviation of one frame's board position, per camera axis, mm. Default 0.03.</summary>
    public double PositionNoiseMm { get; init; } = 0.03;

    /// <summary>Standard deviation of one frame's board orientation, per axis, rad. Default 0.003 (0.17°).</summary>
    public double RotationNoiseRad { get; init; } = 0.003;

    /// <summary>White-noise acceleration the head may have, mm/s² (higher follows faster, smooths less). Default 40.</summary>
    public double AccelerationNoiseMmPerS2 { get; init; } = 40;

    /// <summary>
    /// Also estimate the head's acceleration (a constant-acceleration model on position): predictions
    /// a few hundred ms ahead (to the moment a plunge reaches depth) then follow a swaying head's
    /// curve instead of its tangent. Default false (constant velocity).
    /// </summary>
    public bool EstimateAcceleration { get; init; }

    /// <summary>With <see cref="EstimateAcceleration"/>: white-noise jerk, mm/s³. Default 300.</summary>
    public double JerkNoiseMmPerS3 { get; init; } = 300;

    /// <summary>
    /// Also estimate the head's jerk (a constant-jerk model on position, over <see cref="EstimateAcceleration"/>):
    /// predictions a few hundred ms ahead then follow a swaying head's curve as it bends, and two predictions of
    /// the same instant made a few frames apart agree more closely. Default false.
    /// </summary>
    public bool EstimateJerk { get; init; }

    /// <summary>With <see cref="EstimateJerk"/>: white-noise snap (the jerk's rate), mm/s⁴. Default 15.</summary>
    public double SnapNoiseMmPerS4 { get; init; } = 15;

    /// <summary>White-noise angular acceleration, rad/s². Default 0.5.</summary>
    public double AngularAccelerationNoiseRadPerS2 { get; init; } = 0.5;

    /// <summary>
    /// A measurement further than this many standard deviations from the prediction is a jerk, not
    /// noise: the filter restarts from the last two measurements (so the speed shows the jerk at once
    /// instead of being smoothed away). Default 6.
    /// </summary>
    public double JerkGateSigma { get; init; } = 6;

    /// <summary>Longest extrapolation to "now", ms; older poses are held, not extrapolated further. Default 100.</summary>
    public double MaxPredictionMs { get; init; } = 100;

    /// <summary>A gap between measurements longer than this restarts the filter, ms. Default 500.</summary>
    public double MaxGapMs { get; init; } = 500;

    /// <summary>
    /// Head speed = |v| + |ω| × this lever arm: a bound on the speed of scalp points within this
    /// distance of the board origin, mm. Default 30.
    /// </summary>
    public double SpeedLeverArmMm { get; init; } = 30;
}

/// <summary>The filter's state at one instant.</summary>
/// <param name="CameraFromHead">Smoothed (or predicted) T_CH.</param>
/// <param name="VelocityMmPerS">Velocity of the head-frame origin in camera frame, mm/s.</param>
/// <param name="AngularVelocityRadPerS">Angular velocity in camera frame, rad/s.</param>
/// <param name="HeadSpeedMmPerS">|v| + |ω| × lever arm, mm/s.</param>
/// <param name="MeasurementTimestamp">Timestamp of the last measurement folded in.</param>
public sealed record FilteredPose(RigidTransform CameraFromHead, Vec3 VelocityMmPerS, Vec3 AngularVelocityRadPerS, double HeadSpeedMmPerS, long MeasurementTimestamp);

/// <summary>
/// Kalman filter on the board pose: per camera axis a [position, velocity] filter (or with
/// acceleration, or acceleration and jerk: <see cref="PoseFilterOptions.EstimateAcceleration"/>,
/// <see cref="PoseFilterOptions.EstimateJerk"/>), and a [angle, angular velocity] filter on the
/// orientation error (rotation vector of R_measured · R_predictedᵀ, so angles never wrap).
/// Hand-written (per-axis matrices of at most 4×4) rather than OpenCV's KalmanFilter so that the
/// rotation error state and the jerk gate stay explicit. Not thread-safe.
/// </summary>
public sealed class PoseFilter
{
    private readonly PoseFilterOptions _options;
    private readonly double _timestampFrequency;
    private readonly KalmanAxis[] _position;
    private readonly Axis[] _rotation = [new(), new(), new()];
    private double[] _r = [1, 0, 0, 0, 1, 0, 0, 0, 1];
    private long _timestamp;
    private RigidTransform _lastMeasurement;
    private long _lastMeasurementTimestamp;

    public PoseFilter(TimeProvider timeProvider, PoseFilterOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(timeProvider);
        _options = options ?? new PoseFilterOptions();
        _timestampFrequency = timeProvider.TimestampFrequency;
        var states = _options.EstimateJerk ? 4 : _options.EstimateAcceleration ? 3 : 0;
        _position = states > 0 ? [new PolynomialAxis(states), new PolynomialAxis(states), new PolynomialAxis(states)] : [new Axis(), new Axis(), new Axis()];
    }

    /// <summary>Measurements folded in since the last (re)start.</summary>
    public int MeasurementCount { get; private set; }

    /// <summary>Number of times a jerk (gate violation) restarted the filter.</summary>
    public int JerkCount { get; private set; }

    /// <summary>Forgets everything.</summary>
    public void Reset() => MeasurementCount = 0;

    /// <summary>Folds in one measured T_CH taken at <paramref name="timestamp"/>; returns the smoothed state there.</summary>
    public FilteredPose Update(RigidTransform measured, long timestamp)
    {
        var dt = (timestamp - _timestamp) / _timestampFrequency;
        if (MeasurementCount == 0 || dt <= 0 || dt * 1000 > _options.MaxGapMs)
        {
            Start(measured, timestamp, previous: null, 0);
            return State(timestamp);
        }

        Predict(dt);
        var z = measured.Translation;
        double[] zp = [z.X, z.Y, z.Z];
        var rotationError = Rotations.VectorFromMatrix(Rotations.Multiply(Rotations.RotationMatrix(measured), Rotations.Transpose(_r)));
        double[] zr = [rotationError.X, rotationError.Y, rotationError.Z];
        var rPos = _options.PositionNoiseMm * _options.PositionNoiseMm;
        var rRot = _options.RotationNoiseRad * _options.RotationNoiseRad;

        var gate = _options.JerkGateSigma;
        var jerk = false;
        for (var i = 0; i < 3; i++)
        {
            jerk |= Math.Abs(zp[i] - _position[i].P) > gate * Math.Sqrt(_position[i].VarP + rPos);
            jerk |= Math.Abs(zr[i]) > gate * Math.Sqrt(_rotation[i].P00 + rRot);
        }
        if (jerk)
        {
            JerkCount++;
            var sincePrevious = (timestamp - _lastMeasurementTimestamp) / _timestampFrequency;
            Start(measured, timestamp, _lastMeasurement, sincePrevious);
            return State(timestamp);
        }

        for (var i = 0; i < 3; i++)
        {
            _position[i].Correct(zp[i] - _position[i].P, rPos);
            _rotation[i].Correct(zr[i], rRot);
        }
        // Fold the orientation correction into R and zero the error state.
        var correction = new Vec3(_rotation[0].P, _rotation[1].P, _rotation[2].P);
        _r = Rotations.Multiply(Rotations.MatrixFromVector(correction), _r);
        foreach (var a in _rotation) a.P = 0;

        _timestamp = timestamp;
        _lastMeasurement = measured;
        _lastMeasurementTimestamp = timestamp;
        MeasurementCount++;
        return State(timestamp);
    }

    /// <summary>
    /// The state extrapolated to <paramref name="now"/> (constant velocity), at most
    /// MaxPredictionMs past the last measurement; null before the first measurement.
    /// </summary>
    public FilteredPose? PredictTo(long now)
    {
        if (MeasurementCount == 0) return null;
        var dt = Math.Clamp((now - _timestamp) / _timestampFrequency, 0, _options.MaxPredictionMs / 1000);
        var (p0, v0) = _position[0].Extrapolate(dt);
        var (p1, v1) = _position[1].Extrapolate(dt);
        var (p2, v2) = _position[2].Extrapolate(dt);
        var p = new Vec3(p0, p1, p2);
        var w = new Vec3(_rotation[0].V, _rotation[1].V, _rotation[2].V);
        var r = Rotations.Multiply(Rotations.MatrixFromVector(w * dt), _r);
        var v = new Vec3(v0, v1, v2);
        return new FilteredPose(Rotations.FromMatrix(r, p), v, w, Speed(v, w), _timestamp);
    }

    private FilteredPose State(long timestamp) => PredictTo(timestamp)!;

    private double Speed(Vec3 v, Vec3 w) => v.Length + (w.Length * _options.SpeedLeverArmMm);

    private void Predict(double dt)
    {
        var qa = _options.EstimateJerk ? _options.SnapNoiseMmPerS4 * _options.SnapNoiseMmPerS4
            : _options.EstimateAcceleration ? _options.JerkNoiseMmPerS3 * _options.JerkNoiseMmPerS3
            : _options.AccelerationNoiseMmPerS2 * _options.AccelerationNoiseMmPerS2;
        var qr = _options.AngularAccelerationNoiseRadPerS2 * _options.AngularAccelerationNoiseRadPerS2;
        foreach (var a in _position) a.Predict(dt, qa);
        var w = new Vec3(_rotation[0].V, _rotation[1].V, _rotation[2].V);
        _r = Rotations.Multiply(Rotations.MatrixFromVector(w * dt), _r);
        foreach (var a in _rotation)
        {
            a.Predict(dt, qr);
            a.P = 0; // the orientation itself moved into _r; the axis keeps only the error state
        }
    }

    /// <summary>(Re)starts at <paramref name="measured"/>; with a previous measurement the velocity is their difference.</summary>
    private void Start(RigidTransform measured, long timestamp, RigidTransform? previous, double dtSincePrevious)
    {
        var z = measured.Translation;
        double[] zp = [z.X, z.Y, z.Z];
        var haveVelocity = previous is not null && dtSincePrevious > 0;
        double[] v = [0, 0, 0];
        double[] w = [0, 0, 0];
        if (haveVelocity)
        {
            var d = (z - previous!.Value.Translation) * (1 / dtSincePrevious);
            v = [d.X, d.Y, d.Z];
            var dr = Rotations.VectorFromMatrix(Rotations.Multiply(Rotations.RotationMatrix(measured), Rotations.Transpose(Rotations.RotationMatrix(previous.Value)))) * (1 / dtSincePrevious);
            w = [dr.X, dr.Y, dr.Z];
        }
        var rPos = _options.PositionNoiseMm * _options.PositionNoiseMm;
        var rRot = _options.RotationNoiseRad * _options.RotationNoiseRad;
        // Unknown velocity: wide enough that a few frames settle it.
        var dtRef = haveVelocity ? dtSincePrevious : 1.0 / 30;
        for (var i = 0; i < 3; i++)
        {
            _position[i].Init(zp[i], v[i], rPos, (2 * rPos / (dtRef * dtRef)) + (haveVelocity ? 0 : 100));
            _rotation[i].Init(0, w[i], rRot, (2 * rRot / (dtRef * dtRef)) + (haveVelocity ? 0 : 0.01));
        }
        _r = Rotations.RotationMatrix(measured);
        _timestamp = timestamp;
        _lastMeasurement = measured;
        _lastMeasurementTimestamp = timestamp;
        MeasurementCount = 1;
    }

    /// <summary>One position or orientation axis of the filter.</summary>
    private abstract class KalmanAxis
    {
        public double P;
        public double V;

        /// <summary>Variance of the position estimate.</summary>
        public abstract double VarP { get; }

        /// <summary>(Re)starts with position and velocity and their variances (acceleration, if any, unknown around 0).</summary>
        public abstract void Init(double p, double v, double varP, double varV);

        /// <summary>Time update by <paramref name="dt"/> s with process noise intensity <paramref name="q"/>.</summary>
        public abstract void Predict(double dt, double q);

        /// <summary>Measurement update with a position innovation of variance <paramref name="r"/>.</summary>
        public abstract void Correct(double innovation, double r);

        /// <summary>Position and velocity <paramref name="dt"/> s ahead, without changing the state.</summary>
        public virtual (double P, double V) Extrapolate(double dt) => (P + (V * dt), V);
    }

    /// <summary>Constant velocity: state [p, v], covariance [[P00, P01], [P01, P11]], white-noise acceleration.</summary>
    private sealed class Axis : KalmanAxis
    {
        public double P00;
        public double P01;
        public double P11;

        public override double VarP => P00;

        public override void Init(double p, double v, double varP, double varV)
        {
            (P, V, P00, P01, P11) = (p, v, varP, 0, varV);
        }

        public override void Predict(double dt, double q)
        {
            P += V * dt;
            var p00 = P00 + (2 * dt * P01) + (dt * dt * P11) + (q * dt * dt * dt * dt / 4);
            var p01 = P01 + (dt * P11) + (q * dt * dt * dt / 2);
            var p11 = P11 + (q * dt * dt);
            (P00, P01, P11) = (p00, p01, p11);
        }

        public override void Correct(double innovation, double r)
        {
            var s = P00 + r;
            var k0 = P00 / s;
            var k1 = P01 / s;
            P += k0 * innovation;
            V += k1 * innovation;
            var p00 = (1 - k0) * P00;
            var p01 = (1 - k0) * P01;
            var p11 = P11 - (k1 * P01);
            (P00, P01, P11) = (p00, p01, p11);
        }
    }

    /// <summary>
    /// Constant acceleration (state [p, v, a], white-noise jerk) or constant jerk (state [p, v, a, j], white-noise
    /// snap): the continuous white-noise model on the highest derivative, discretised exactly.
    /// </summary>
    private sealed class PolynomialAxis(int states) : KalmanAxis
    {
        private readonly double[] _x = new double[states]; // derivatives above velocity: a, j
        private readonly double[,] _c = new double[states, states];

        public override double VarP => _c[0, 0];

        public override void Init(double p, double v, double varP, double varV)
        {
            (P, V) = (p, v);
            Array.Clear(_x);
            Array.Clear(_c);
            _c[0, 0] = varP;
            _c[1, 1] = varV;
            _c[2, 2] = 400; // (20 mm/s²)²: unknown, settles within a few frames
            if (states > 3) _c[3, 3] = 1e4; // (100 mm/s³)²: likewise
        }

        private static double Factorial(int k) => k <= 1 ? 1 : k * Factorial(k - 1);

        /// <summary>F(dt): the Taylor step, F[i, j] = dt^(j−i) / (j−i)! for j ≥ i.</summary>
        private double[,] Step(double dt)
        {
            var f = new double[states, states];
            for (var i = 0; i < states; i++)
            {
                for (var j = i; j < states; j++) f[i, j] = Math.Pow(dt, j - i) / Factorial(j - i);
            }
            return f;
        }

        private double State(int i) => i switch { 0 => P, 1 => V, _ => _x[i] };

        public override void Predict(double dt, double q)
        {
            var f = Step(dt);
            var x = new double[states];
            for (var i = 0; i < states; i++)
            {
                for (var j = i; j < states; j++) x[i] += f[i, j] * State(j);
            }
            (P, V) = (x[0], x[1]);
            for (var i = 2; i < states; i++) _x[i] = x[i];
            // C = F C Fᵀ + Q with Q[i, j] = q dt^(a+b+1) / (a! b! (a+b+1)), a = n−1−i, b = n−1−j.
            var fc = new double[states, states];
            for (var i = 0; i < states; i++)
            {
                for (var j = 0; j < states; j++)
                {
                    for (var k = i; k < states; k++) fc[i, j] += f[i, k] * _c[k, j];
                }
            }
            for (var i = 0; i < states; i++)
            {
                for (var j = 0; j < states; j++)
                {
                    var sum = 0.0;
                    for (var k = j; k < states; k++) sum += fc[i, k] * f[j, k];
                    int a = states - 1 - i, b = states - 1 - j;
                    _c[i, j] = sum + (q * Math.Pow(dt, a + b + 1) / (Factorial(a) * Factorial(b) * (a + b + 1)));
                }
            }
        }

        public override void Correct(double innovation, double r)
        {
            var s = _c[0, 0] + r;
            var k = new double[states];
            for (var i = 0; i < states; i++) k[i] = _c[i, 0] / s;
            P += k[0] * innovation;
            V += k[1] * innovation;
            for (var i = 2; i < states; i++) _x[i] += k[i] * innovation;
            var row0 = new double[states];
            for (var j = 0; j < states; j++) row0[j] = _c[0, j];
            for (var i = 0; i < states; i++)
            {
                for (var j = 0; j < states; j++) _c[i, j] -= k[i] * row0[j];
            }
        }

        public override (double P, double V) Extrapolate(double dt)
        {
            var f = Step(dt);
            double p = 0, v = 0;
            for (var j = 0; j < states; j++)
            {
                p += f[0, j] * State(j);
                if (j >= 1) v += f[1, j] * State(j);
            }
            return (p, v);
        }
    }
}
