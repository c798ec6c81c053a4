using System.Security.Cryptography.X509Certificates;

namespace SmpRobot.Operator.Cli;

/// <summary>
/// How <c>smp</c> proves who it is and whom it trusts: the user's access token (from SMP_TOKEN or a file only its
/// owner can read, never from the command line, where other users would see it in the process list) and, for an
/// https controller, the CA (or the chair's own certificate, pinned) to trust.
/// </summary>
internal sealed record ControllerAccess(string? Token, X509Certificate2? TrustedCa)
{
    /// <summary>No token, the system's trust store.</summary>
    public static ControllerAccess None { get; } = new(null, null);

    /// <summary>
    /// Reads the token from <paramref name="tokenFile"/> (which must exist and be readable by its owner only) or else
    /// SMP_TOKEN, and the CA from <paramref name="caFile"/> or else SMP_CA. CliException (usage) saying what is wrong.
    /// </summary>
    public static ControllerAccess Resolve(string? tokenFile, string? caFile, Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        string? token = null;
        if (!string.IsNullOrWhiteSpace(tokenFile))
        {
            token = ReadTokenFile(tokenFile);
        }
        else if (environment("SMP_TOKEN") is { Length: > 0 } fromEnvironment)
        {
            token = fromEnvironment.Trim();
        }
        var ca = caFile is { Length: > 0 } ? caFile : environment("SMP_CA");
        return new ControllerAccess(token, string.IsNullOrWhiteSpace(ca) ? null : LoadCa(ca));
    }

    private static string ReadTokenFile(string path)
    {
        if (!File.Exists(path)) throw new CliException(ExitCodes.Usage, $"token file {path} does not exist");
        if (!OperatingSystem.IsWindows())
        {
            var mode = File.GetUnixFileMode(path);
            if ((mode & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute)) != 0)
            {
                throw new CliException(ExitCodes.Usage, $"token file {path} can be read by others: chmod 600 {path}");
            }
        }
        var token = File.ReadAllText(path).Trim();
        if (token.Length == 0) throw new CliException(ExitCodes.Usage, $"token file {path} is empty");
        return token;
    }

    private static X509Certificate2 LoadCa(string path)
    {
        try
        {
            return X509CertificateLoader.LoadCertificateFromFile(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            throw new CliException(ExitCodes.Usage, $"cannot read the CA certificate {path}: {e.Message}");
        }
    }

    /// <summary>
    /// With a CA given: the controller's certificate must chain to it (a self-signed chair certificate is its own CA,
    /// which pins it); the host name must match as usual. Without one: the system's trust store.
    /// </summary>
    public void ConfigureTls(SocketsHttpHandler handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        if (TrustedCa is not { } ca) return;
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, presentedChain, errors) =>
        {
            if (certificate is null || (errors & (System.Net.Security.SslPolicyErrors.RemoteCertificateNameMismatch | System.Net.Security.SslPolicyErrors.RemoteCertificateNotAvailable)) != 0) return false;
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(ca);
            // The intermediates the chair sent (a clinic CA's chain), and a certificate meant for a server.
            if (presentedChain is not null)
            {
                foreach (var element in presentedChain.ChainElements) chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
            chain.ChainPolicy.ApplicationPolicy.Add(new System.Security.Cryptography.Oid("1.3.6.1.5.5.7.3.1"));
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            using var presented = new X509Certificate2(certificate);
            return chain.Build(presented);
        };
    }
}
