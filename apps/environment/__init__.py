"""Environmental supervision: air quality, pollution-source data, dispersion and exceedances."""
