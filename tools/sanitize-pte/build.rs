fn main() -> Result<(), ptm_build::Error> {
    ptm_build::bundle()?;
    Ok(())
}
