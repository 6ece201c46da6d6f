using System.Globalization;
using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.EnvironmentVariables;
using Microsoft.Extensions.Configuration.Ini;
using XenAoe.Net;

namespace XenAoe.Agents.Configuration;

/// <summary>A setting that stops the daemon before it starts anything: one line naming where the value came from, the key and what is wrong.</summary>
public sealed class ConfigException(string message) : Exception(message);

/// <summary>
/// A daemon's settings, read through Microsoft.Extensions.Configuration: the INI file (<c>/etc/xenaoe/ROLE.conf</c> when it
/// exists, or the one <c>--config</c> names), then <c>XENAOE_KEY</c> environment variables, then command-line flags, each
/// overriding the one before. Typed getters check each value and say where a bad one came from; <see cref="Load"/> refuses keys
/// the file should not have.
/// </summary>
public sealed class DaemonSettings
{
    public const string ConfigDirectory = "/etc/xenaoe";
    public const string EnvironmentPrefix = "XENAOE_";

    private readonly ConfigSchema _schema;
    private readonly IConfigurationRoot _root;
    private readonly string? _file;

    private DaemonSettings(ConfigSchema schema, IConfigurationRoot root, string? file)
    {
        _schema = schema;
        _root = root;
        _file = file;
    }

    /// <param name="file">The file <c>--config</c> named (it must exist); null: <see cref="ConfigSchema.DefaultFile"/> if it exists.</param>
    /// <param name="flags">Values given on the command line, by key; lists joined with ','.</param>
    /// <exception cref="ConfigException">The file is missing, unreadable or not INI, or has a key this daemon does not know.</exception>
    public static DaemonSettings Load(ConfigSchema schema, string? file, IReadOnlyDictionary<string, string?> flags)
    {
        if (file is not null && !File.Exists(file))
            throw new ConfigException($"{file}: no such configuration file");
        var path = file ?? (File.Exists(schema.DefaultFile) ? schema.DefaultFile : null);
        var builder = new ConfigurationBuilder();
        if (path is not null)
            builder.AddIniFile(new Microsoft.Extensions.FileProviders.PhysicalFileProvider(Path.GetDirectoryName(Path.GetFullPath(path))!), Path.GetFileName(path), optional: false, reloadOnChange: false);
        builder.AddEnvironmentVariables(EnvironmentPrefix);
        builder.AddInMemoryCollection(flags.Where(f => f.Value is not null));
        IConfigurationRoot root;
        try
        {
            root = builder.Build();
        }
        catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException or InvalidDataException)
        {
            throw new ConfigException($"{path}: {(e.InnerException ?? e).Message}");
        }
        var settings = new DaemonSettings(schema, root, path);
        if (path is not null)
        {
            // Only the file is held to the schema: the environment also carries the CLI's XENAOE_CONTROLLER and XENAOE_TOKEN.
            var provider = root.Providers.OfType<IniConfigurationProvider>().Single();
            foreach (var key in provider.GetChildKeys([], null).Distinct(StringComparer.OrdinalIgnoreCase))
            {
                if (!schema.Keys.Any(k => string.Equals(k.Name, key, StringComparison.OrdinalIgnoreCase)))
                    throw new ConfigException($"{path}: unknown key '{key}' (a {schema.Role} server knows {string.Join(", ", schema.Keys.Select(k => k.Name))})");
            }
        }
        return settings;
    }

    /// <summary>The value as given (trimmed), or null when no source sets it or it is empty.</summary>
    public string? String(string key)
    {
        _ = _schema[key];
        var value = _root[key]?.Trim();
        return string.IsNullOrEmpty(value) ? null : value;
    }

    public string String(string key, string fallback) => String(key) ?? fallback;

    public IReadOnlyList<string> List(string key) =>
        String(key)?.Split([',', ' ', '\t'], StringSplitOptions.RemoveEmptyEntries) ?? [];

    public int Int(string key, int fallback, int min, int max)
    {
        if (String(key) is not { } text)
            return fallback;
        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
            throw Error(key, $"'{text}' is not a whole number {min}-{max}");
        return value;
    }

    public TimeSpan Seconds(string key, TimeSpan fallback, double min, double max)
    {
        if (String(key) is not { } text)
            return fallback;
        if (!double.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
            throw Error(key, $"'{text}' is not a number of seconds {min.ToString(CultureInfo.InvariantCulture)}-{max.ToString(CultureInfo.InvariantCulture)}");
        return TimeSpan.FromSeconds(value);
    }

    public T Enum<T>(string key, T fallback) where T : struct, System.Enum
    {
        if (String(key) is not { } text)
            return fallback;
        if (!System.Enum.TryParse<T>(text, ignoreCase: true, out var value) || !System.Enum.IsDefined(value) || char.IsDigit(text[0]))
            throw Error(key, $"'{text}' is not one of {string.Join(", ", System.Enum.GetNames<T>().Select(n => n.ToLowerInvariant()))}");
        return value;
    }

    public IPEndPoint? Endpoint(string key) => String(key) is { } text ? ParseEndpoint(key, text) : null;

    public IReadOnlyList<IPEndPoint> Endpoints(string key) => [.. List(key).Select(text => ParseEndpoint(key, text))];

    /// <summary>
    /// Storage NICs: each must exist on this machine with at least <paramref name="minMtu"/> (the MTU the storage network is
    /// built for: a NIC left at 1500 on a jumbo-frame switch would halve every transfer and drop nothing to show it).
    /// </summary>
    public IReadOnlyList<string> Interfaces(string key, int minMtu)
    {
        var names = List(key);
        if (names.Count == 0)
            throw Error(key, "name at least one storage network interface");
        foreach (var name in names)
        {
            NetworkInterfaceInfo nic;
            try
            {
                nic = NetworkInterfaceInfo.Get(name);
            }
            catch (NetworkInterfaceNotFoundException)
            {
                throw Error(key, $"no network interface '{name}' on this machine (there are {string.Join(", ", NetworkInterfaceInfo.List().Select(n => n.Name))})");
            }
            if (nic.Mtu < minMtu)
                throw Error(key, $"interface {name} has MTU {nic.Mtu}, below the storage_mtu {minMtu} the storage network needs");
        }
        return names;
    }

    /// <summary>A bad value of <paramref name="key"/>: "SOURCE: key 'KEY': WHAT", SOURCE being the file, the environment variable or the flag that set it.</summary>
    public ConfigException Error(string key, string what)
    {
        var provider = _root.Providers.LastOrDefault(p => p.TryGet(key, out _));
        var source = provider switch
        {
            IniConfigurationProvider => _file!,
            EnvironmentVariablesConfigurationProvider => "environment " + _schema[key].EnvironmentVariable,
            null => "default",
            _ => "command line " + _schema[key].Flag,
        };
        return new ConfigException($"{source}: key '{key}': {what}");
    }

    private IPEndPoint ParseEndpoint(string key, string text) =>
        IPEndPoint.TryParse(text, out var endpoint) && endpoint.Port != 0 ? endpoint
            : throw Error(key, $"'{text}' is not an address:port such as 10.0.0.11:7200");
}
